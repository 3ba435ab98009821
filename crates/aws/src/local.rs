//! The `local` minter: keys in the real AWS format for a configured account, made from the OS
//! CSPRNG. They are not known to AWS, so they only alert through paths that do not need AWS.

use async_trait::async_trait;
use canarykeys_core::{names, AccessKeyId, AccountId, SecretAccessKey};

use crate::{KeyRef, MintError, MintRequest, MintedKey, Minter};

#[derive(Clone, Debug)]
pub struct LocalMinter {
    account: AccountId,
}

impl LocalMinter {
    pub fn new(account: AccountId) -> Self {
        Self { account }
    }
}

#[async_trait]
impl Minter for LocalMinter {
    fn name(&self) -> &'static str {
        "local"
    }

    fn keys_valid_at_aws(&self) -> bool {
        false
    }

    async fn mint(&self, request: &MintRequest) -> Result<MintedKey, MintError> {
        if let Some(account) = request.account.filter(|a| *a != self.account) {
            return Err(MintError::UnknownAccount(account));
        }
        Ok(MintedKey {
            access_key_id: AccessKeyId::generate_for(self.account),
            secret_access_key: SecretAccessKey::generate(),
            username: request
                .username
                .clone()
                .unwrap_or_else(names::ordinary_user_name),
            account_id: self.account,
        })
    }

    async fn revoke(&self, _key: &KeyRef<'_>) -> Result<(), MintError> {
        // Nothing exists outside our database, so there is nothing to destroy.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mints_keys_for_its_account() {
        let account = AccountId::parse("123456789012").unwrap();
        let m = LocalMinter::new(account);
        let a = m.mint(&MintRequest::default()).await.unwrap();
        let b = m.mint(&MintRequest::default()).await.unwrap();
        assert_eq!(a.access_key_id.account_id(), account);
        assert_eq!(a.account_id, account);
        assert_ne!(a.access_key_id, b.access_key_id);
        assert_ne!(a.secret_access_key, b.secret_access_key);
        names::check_no_tells(a.username.as_str()).unwrap();
        assert!(!m.keys_valid_at_aws());
    }
}
