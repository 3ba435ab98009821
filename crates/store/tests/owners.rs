//! Who owns a token, and what an API key may create, on both backends: the owner is written
//! with the token, a tamper alert's outbox rows commit with the change they are about (and not
//! at all when the change found nothing), and the create budget counts per minute and live.

#[allow(dead_code)]
mod support;

use canarykeys_store::{
    AccessStore, ApiKeyRecord, AuditRecord, AuditedStore, AuditedWrite, ChannelKind,
    ChannelSwitches, CreateBudget, OperatorRecord, OutboxStore, SqlStore, TokenOwner, TokenStore,
};

fn audit(action: &str, target: &str) -> AuditRecord {
    AuditRecord {
        id: format!("a-{action}-{target}"),
        at: 1_000,
        actor: "manage-secret".into(),
        action: action.into(),
        target: target.into(),
        details: String::new(),
    }
}

async fn operator_with_key(store: &SqlStore, per_minute: i64, live: i64) {
    store
        .insert_operator(&OperatorRecord {
            id: "op1".into(),
            name: "fleet".into(),
            password_hash: "$argon2id$fake".into(),
            failed_logins: 0,
            locked_until: None,
            created_at: 1,
        })
        .await
        .unwrap();
    store
        .insert_api_key(&ApiKeyRecord {
            id: "key1".into(),
            operator_id: "op1".into(),
            name: "fleet key".into(),
            key_hash: "h1".into(),
            scopes: "tokens:write".into(),
            created_at: 1,
            revoked_at: None,
            last_used_at: None,
            create_per_minute: per_minute,
            live_tokens_max: live,
        })
        .await
        .unwrap();
}

async fn owned_tokens_and_tamper_rows(store: &SqlStore) {
    operator_with_key(store, 60, 1000).await;
    let token = support::token(1_000);
    let owner = TokenOwner {
        operator_id: "op1".into(),
        api_key_id: Some("key1".into()),
    };
    let write = AuditedWrite::InsertOwnedToken(&token, &owner);
    assert!(store
        .write_audited(write, &audit("token.create", token.id.as_str()))
        .await
        .unwrap());
    assert_eq!(store.token_owner(&token.id).await.unwrap(), Some(owner));
    // A token made without an owner has none.
    let anonymous = support::token(1_000);
    store.insert_token(&anonymous).await.unwrap();
    assert_eq!(store.token_owner(&anonymous.id).await.unwrap(), None);

    // The change and its alert commit together.
    let rows = [
        support::delivery(&token, "tamper-1", ChannelKind::Email),
        support::delivery(&token, "tamper-1", ChannelKind::Webhook),
    ];
    let off = ChannelSwitches {
        email: None,
        webhook: Some(false),
    };
    let applied = store
        .write_audited_alerting(
            AuditedWrite::SetChannels(&token.id, off),
            &audit("token.channels", token.id.as_str()),
            &rows,
        )
        .await
        .unwrap();
    assert!(applied);
    assert_eq!(store.list_deliveries(&token.id, 10).await.unwrap().len(), 2);
    let got = store.get_token(&token.id).await.unwrap().unwrap();
    assert!(!got.webhook_enabled);

    // A delete's alert survives the token; a second delete finds nothing and writes nothing.
    let rows = [support::delivery(&token, "tamper-2", ChannelKind::Email)];
    let delete = AuditedWrite::DeleteToken(&token.id);
    let entry = audit("token.delete", token.id.as_str());
    assert!(store
        .write_audited_alerting(delete, &entry, &rows)
        .await
        .unwrap());
    assert_eq!(store.list_deliveries(&token.id, 10).await.unwrap().len(), 3);
    assert_eq!(store.token_owner(&token.id).await.unwrap(), None);
    let rows = [support::delivery(&token, "tamper-3", ChannelKind::Email)];
    let entry = AuditRecord {
        id: "a-again".into(),
        ..audit("token.delete", token.id.as_str())
    };
    assert!(!store
        .write_audited_alerting(AuditedWrite::DeleteToken(&token.id), &entry, &rows)
        .await
        .unwrap());
    assert_eq!(store.list_deliveries(&token.id, 10).await.unwrap().len(), 3);
}

async fn create_budget(store: &SqlStore) {
    operator_with_key(store, 2, 3).await;
    let now = 100_000;
    assert_eq!(
        store.reserve_create("nope", now).await.unwrap(),
        CreateBudget::UnknownKey
    );
    for _ in 0..2 {
        assert_eq!(
            store.reserve_create("key1", now).await.unwrap(),
            CreateBudget::Granted
        );
    }
    // The third in the same minute is refused until the window that opened at `now` ends.
    assert_eq!(
        store.reserve_create("key1", now + 59_000).await.unwrap(),
        CreateBudget::PerMinute {
            limit: 2,
            retry_at: now + 60_000
        }
    );
    // A new minute: counted again, until the key has three live tokens.
    let owner = TokenOwner {
        operator_id: "op1".into(),
        api_key_id: Some("key1".into()),
    };
    for i in 0..3 {
        let token = support::token(1_000);
        let write = AuditedWrite::InsertOwnedToken(&token, &owner);
        let entry = audit("token.create", &format!("t{i}"));
        store.write_audited(write, &entry).await.unwrap();
    }
    assert_eq!(
        store.reserve_create("key1", now + 60_000).await.unwrap(),
        CreateBudget::LiveTokens { limit: 3 }
    );
}

canarykeys_testkit::on_both_backends!(owned_tokens_and_tamper_rows, create_budget);
