//! The live tokens' key ids and (account, user) pairs, in memory: matching a record costs a hash
//! lookup, and a key of someone else's account costs no database query at all.
//!
//! It is loaded at start and kept exact by the token service on create, delete and expiry. Other
//! processes (a replica, the CLI) can create tokens too, so a miss for a key or user in one of
//! OUR decoy accounts is checked in the database, and a token found there joins the index: a
//! token made elsewhere matches at once, and there is no negative cache to go stale. A token
//! deleted elsewhere may linger here, but the hit insert keeps only hits of existing tokens.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use canarykeys_core::{AccessKeyId, AccountId, IamUserName, TokenId};
use canarykeys_store::{Store, StoreError, TokenRecord};

#[derive(Default)]
struct Maps {
    by_key: HashMap<AccessKeyId, TokenId>,
    by_user: HashMap<(AccountId, IamUserName), TokenId>,
    /// The decoy accounts: those of the configured minter and of every token seen.
    accounts: HashSet<AccountId>,
}

impl Maps {
    fn add(&mut self, t: &TokenRecord) {
        self.by_key.insert(t.access_key_id.clone(), t.id.clone());
        self.by_user
            .insert((t.account_id, t.username.clone()), t.id.clone());
        self.accounts.insert(t.account_id);
    }
}

#[derive(Clone, Default)]
pub struct KeyIndex {
    maps: Arc<RwLock<Maps>>,
}

impl KeyIndex {
    /// Loads every stored token. `accounts` are the configured decoy accounts, so a token made
    /// by another process in one of them is found even before this one has seen any.
    pub async fn load(store: &dyn Store, accounts: &[AccountId]) -> Result<Self, StoreError> {
        let index = Self::default();
        {
            let mut maps = index.write();
            maps.accounts.extend(accounts.iter().copied());
        }
        for t in store.list_tokens().await? {
            index.insert(&t);
        }
        Ok(index)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        // A panic while holding the lock cannot leave the maps half-updated (each write is one
        // insert or remove), so a poisoned lock is still good to use.
        self.maps.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, t: &TokenRecord) {
        self.write().add(t);
    }

    pub fn remove(&self, t: &TokenRecord) {
        let mut maps = self.write();
        maps.by_key.remove(&t.access_key_id);
        maps.by_user.remove(&(t.account_id, t.username.clone()));
    }

    pub fn len(&self) -> usize {
        self.read().by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The token of a key. Only a key of one of our accounts that is not indexed costs a query.
    pub async fn by_key(
        &self,
        store: &dyn Store,
        key: &AccessKeyId,
    ) -> Result<Option<TokenId>, StoreError> {
        let ours = {
            let maps = self.read();
            if let Some(id) = maps.by_key.get(key) {
                return Ok(Some(id.clone()));
            }
            maps.accounts.contains(&key.account_id())
        };
        if !ours {
            return Ok(None);
        }
        Ok(self.learn(store.find_token_by_key(key).await?))
    }

    /// The token of an IAM user in an account; as `by_key`.
    pub async fn by_user(
        &self,
        store: &dyn Store,
        account: AccountId,
        user: &IamUserName,
    ) -> Result<Option<TokenId>, StoreError> {
        let ours = {
            let maps = self.read();
            if let Some(id) = maps.by_user.get(&(account, user.clone())) {
                return Ok(Some(id.clone()));
            }
            maps.accounts.contains(&account)
        };
        if !ours {
            return Ok(None);
        }
        Ok(self.learn(store.find_token_by_user(&account, user).await?))
    }

    fn learn(&self, found: Option<TokenRecord>) -> Option<TokenId> {
        let t = found?;
        self.insert(&t);
        Some(t.id)
    }
}
