//! `AccessStore` against both backends, like `store.rs`: a temp SQLite file and a fresh
//! PostgreSQL database (`CANARYKEYS_TEST_POSTGRES_URL`). A missing PostgreSQL fails the test.

use canarykeys_store::{
    AccessStore, ApiKeyRecord, AuditRecord, AuditedStore, AuditedWrite, OperatorRecord, SqlStore,
    StoreError,
};

fn operator(id: &str, name: &str) -> OperatorRecord {
    OperatorRecord {
        id: id.into(),
        name: name.into(),
        password_hash: "$argon2id$fake".into(),
        failed_logins: 0,
        locked_until: None,
        created_at: 1_000,
    }
}

async fn suite(store: &SqlStore) {
    store
        .insert_operator(&operator("op1", "alice"))
        .await
        .unwrap();
    assert!(matches!(
        store.insert_operator(&operator("op2", "alice")).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.operator_by_name("alice").await.unwrap().unwrap().id,
        "op1"
    );
    assert!(store.operator_by_id("nope").await.unwrap().is_none());

    // Four failures count; the fifth locks for what the schedule says, and later ones too,
    // never shortening a longer lock.
    let schedule = |n: i64| (n >= 5).then_some(if n == 5 { 9_000 } else { 1_000 });
    for n in 1..=4 {
        assert_eq!(
            store
                .record_login_failure("op1", 100, &schedule)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .operator_by_id("op1")
                .await
                .unwrap()
                .unwrap()
                .failed_logins,
            n
        );
    }
    assert_eq!(
        store
            .record_login_failure("op1", 100, &schedule)
            .await
            .unwrap(),
        Some(9_100)
    );
    store
        .record_login_failure("op1", 200, &schedule)
        .await
        .unwrap();
    let op = store.operator_by_id("op1").await.unwrap().unwrap();
    assert_eq!((op.failed_logins, op.locked_until), (6, Some(9_100)));
    store.clear_login_failures("op1").await.unwrap();
    assert_eq!(
        store
            .operator_by_id("op1")
            .await
            .unwrap()
            .unwrap()
            .locked_until,
        None
    );

    // Sessions: found while unexpired, gone when deleted or expired.
    store
        .insert_session("h1", "op1", 1_000, 5_000)
        .await
        .unwrap();
    store
        .insert_session("h2", "op1", 1_000, 2_000)
        .await
        .unwrap();
    assert_eq!(
        store
            .session_operator("h1", 4_999)
            .await
            .unwrap()
            .unwrap()
            .name,
        "alice"
    );
    assert!(store.session_operator("h1", 5_000).await.unwrap().is_none());
    assert_eq!(store.delete_expired_sessions(3_000).await.unwrap(), 1);
    store.delete_session("h1").await.unwrap();
    assert!(store.session_operator("h1", 1_500).await.unwrap().is_none());

    // API keys: looked up by hash, revoked once.
    let key = ApiKeyRecord {
        id: "k1".into(),
        operator_id: "op1".into(),
        name: "ci".into(),
        key_hash: "abc".into(),
        scopes: "tokens:read alerts:read".into(),
        created_at: 1_000,
        revoked_at: None,
        last_used_at: None,
        create_per_minute: 60,
        live_tokens_max: 1000,
    };
    store.insert_api_key(&key).await.unwrap();
    assert!(matches!(
        store
            .insert_api_key(&ApiKeyRecord {
                id: "k2".into(),
                ..key.clone()
            })
            .await,
        Err(StoreError::Conflict)
    ));
    store.touch_api_key("k1", 1_500).await.unwrap();
    let got = store.api_key_by_hash("abc").await.unwrap().unwrap();
    assert_eq!(
        (got.scopes.as_str(), got.last_used_at),
        ("tokens:read alerts:read", Some(1_500))
    );
    assert!(store.revoke_api_key("k1", 2_000).await.unwrap());
    assert!(!store.revoke_api_key("k1", 3_000).await.unwrap());
    assert_eq!(
        store
            .api_key_by_hash("abc")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(2_000)
    );
    assert_eq!(store.list_api_keys().await.unwrap().len(), 1);

    // The audit log, newest first, paged.
    for (i, action) in ["login", "api_key.create", "logout"].iter().enumerate() {
        let at = 1_000 + i64::try_from(i).unwrap();
        store
            .insert_audit(&AuditRecord {
                id: format!("a{i}"),
                at,
                actor: "alice".into(),
                action: (*action).into(),
                target: "k1".into(),
                details: String::new(),
            })
            .await
            .unwrap();
    }
    let page = store.list_audit(2, 0).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["logout", "api_key.create"]
    );
    assert_eq!(store.list_audit(2, 2).await.unwrap()[0].action, "login");

    // An audited change that finds no token writes nothing, not even its entry; an entry on
    // its own is written.
    let entry = |id: &str, action: &str| AuditRecord {
        id: id.into(),
        at: 9_000,
        actor: "cli".into(),
        action: action.into(),
        target: "t".into(),
        details: String::new(),
    };
    let missing = canarykeys_core::TokenId::generate();
    let gone = AuditedWrite::DeleteToken(&missing);
    assert!(!store
        .write_audited(gone, &entry("b1", "token.delete"))
        .await
        .unwrap());
    let switches = canarykeys_store::ChannelSwitches {
        email: Some(false),
        webhook: None,
    };
    let off = AuditedWrite::SetChannels(&missing, switches);
    assert!(!store
        .write_audited(off, &entry("b2", "token.channels"))
        .await
        .unwrap());
    let note = AuditedWrite::Nothing;
    assert!(store
        .write_audited(note, &entry("b3", "token.test_alert"))
        .await
        .unwrap());
    let newest = store.list_audit(1, 0).await.unwrap();
    assert_eq!(newest[0].action, "token.test_alert");
    assert_eq!(store.list_audit(100, 0).await.unwrap().len(), 4);

    // With no tokens the all-token pages are empty (their contents are tested through the API).
    assert_eq!(store.tokens_page(10, 0).await.unwrap().1, 0);
    assert!(store.hits_feed(10, 0).await.unwrap().0.is_empty());
}

// `sqlite::suite` and `postgres::suite`.
canarykeys_testkit::on_both_backends!(suite);
