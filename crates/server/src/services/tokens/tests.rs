//! The all-or-nothing rule of create, with a store and a minter that fail on demand.

use std::sync::Mutex;

use async_trait::async_trait;
use canarykeys_aws::{LocalMinter, MintError, MintedKey};
use canarykeys_core::{AccountId, NewTokenInput};
use canarykeys_store::SqlStore;

use super::*;

/// Wraps a real minter and records revocations; can be told to fail minting.
struct RecordingMinter {
    inner: LocalMinter,
    fail_mint: bool,
    revoked: Mutex<Vec<String>>,
}

#[async_trait]
impl Minter for RecordingMinter {
    fn name(&self) -> &'static str {
        "local"
    }
    fn keys_valid_at_aws(&self) -> bool {
        false
    }
    async fn mint(&self, request: &MintRequest) -> Result<MintedKey, MintError> {
        if self.fail_mint {
            return Err(MintError::Unavailable("throttled".into()));
        }
        self.inner.mint(request).await
    }
    async fn revoke(&self, key: &KeyRef<'_>) -> Result<(), MintError> {
        self.revoked
            .lock()
            .unwrap()
            .push(key.access_key_id.to_string());
        Ok(())
    }
}

fn new_token() -> NewToken {
    NewToken::parse(&NewTokenInput {
        memo: Some("m".into()),
        email: Some("a@example.com".into()),
        ..Default::default()
    })
    .unwrap()
}

async fn service(
    fail_insert: bool,
    fail_mint: bool,
) -> (TokenService, Arc<RecordingMinter>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&url).await.unwrap());
    if fail_insert {
        // The database itself refuses the write, as a full disk or a lost connection would.
        let raw = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query("CREATE TRIGGER refuse BEFORE INSERT ON tokens BEGIN SELECT RAISE(ABORT, 'disk full'); END")
            .execute(&raw)
            .await
            .unwrap();
    }
    let minter = Arc::new(RecordingMinter {
        inner: LocalMinter::new(AccountId::parse("123456789012").unwrap()),
        fail_mint,
        revoked: Mutex::new(Vec::new()),
    });
    let sealer = Sealer::load_or_create(&dir.path().join("k")).unwrap();
    let svc = TokenService::new(
        store,
        minter.clone(),
        sealer,
        Region::parse("us-east-1").unwrap(),
        OutputFormat::Json,
    );
    (svc, minter, dir)
}

#[tokio::test]
async fn a_failed_store_write_revokes_the_minted_key() {
    let (svc, minter, _dir) = service(true, false).await;
    let err = svc.create(new_token(), &Actor::Cli).await.err().unwrap();
    assert!(matches!(err, ServiceError::Store(_)));
    assert_eq!(
        minter.revoked.lock().unwrap().len(),
        1,
        "the orphan key was revoked"
    );
    assert!(svc.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_mint_stores_nothing() {
    let (svc, minter, _dir) = service(false, true).await;
    let err = svc.create(new_token(), &Actor::Cli).await.err().unwrap();
    assert!(matches!(err, ServiceError::Mint(MintError::Unavailable(_))));
    assert!(svc.list().await.unwrap().is_empty());
    assert!(minter.revoked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn expired_tokens_are_deleted_with_their_keys() {
    let (svc, minter, _dir) = service(false, false).await;
    let mut input = NewTokenInput {
        memo: Some("ci run 42".into()),
        email: Some("a@example.com".into()),
        username: Some("terraform-ci".into()),
        expires_in: Some("1h".into()),
        ..Default::default()
    };
    let expiring = svc
        .create(NewToken::parse(&input).unwrap(), &Actor::Cli)
        .await
        .unwrap();
    assert_eq!(expiring.token.username.as_str(), "terraform-ci");
    let at = expiring.token.expires_at.unwrap();
    input.expires_in = None;
    input.username = None;
    let lasting = svc
        .create(NewToken::parse(&input).unwrap(), &Actor::Cli)
        .await
        .unwrap();
    assert!(svc.delete_expired(at - 1).await.unwrap().is_empty());
    assert_eq!(svc.delete_expired(at).await.unwrap().len(), 1);
    assert_eq!(
        *minter.revoked.lock().unwrap(),
        vec![expiring.token.access_key_id.to_string()]
    );
    let left: Vec<_> = svc
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(left, vec![lasting.token.id]);
}

#[tokio::test]
async fn create_then_delete_revokes() {
    let (svc, minter, _dir) = service(false, false).await;
    let created = svc.create(new_token(), &Actor::Cli).await.unwrap();
    let secret = created.manage_secret.expose().to_owned();
    let token = svc
        .authorize(created.token.id.as_str(), &secret)
        .await
        .unwrap();
    assert_eq!(
        svc.credentials(&token).await.unwrap().secret_access_key,
        created.credentials.secret_access_key
    );
    svc.delete(&token, &Actor::Cli).await.unwrap();
    assert_eq!(
        *minter.revoked.lock().unwrap(),
        vec![created.token.access_key_id.to_string()]
    );
    assert!(matches!(
        svc.authorize(created.token.id.as_str(), &secret).await,
        Err(ServiceError::NotFound)
    ));
}

#[tokio::test]
async fn changes_leave_their_audit_entry_stamped_by_the_clock() {
    let (svc, _minter, _dir) = service(false, false).await;
    let clock = crate::clock::ManualClock::at(1_700_000_000_000);
    let svc = svc.with_clock(clock.shared());
    let created = svc.create(new_token(), &Actor::Anonymous).await.unwrap();
    assert_eq!(created.token.created_at, 1_700_000_000_000);
    assert_eq!(svc.email_alerting_tokens().await.unwrap(), 1);
    clock.advance(std::time::Duration::from_secs(5));
    let off = ChannelSwitches {
        email: Some(false),
        webhook: None,
    };
    let token = svc
        .set_channels(&created.token, off, &Actor::ManageSecret)
        .await
        .unwrap();
    assert_eq!(svc.email_alerting_tokens().await.unwrap(), 0);
    clock.advance(std::time::Duration::from_secs(1));
    svc.delete(&token, &Actor::Operator("alice".into()))
        .await
        .unwrap();
    let log = svc.store.list_audit(10, 0).await.unwrap();
    let seen: Vec<_> = log
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.at))
        .collect();
    assert_eq!(
        seen,
        [
            ("alice", "token.delete", 1_700_000_006_000),
            ("manage-secret", "token.channels", 1_700_000_005_000),
            ("anonymous", "token.create", 1_700_000_000_000),
        ]
    );
}
