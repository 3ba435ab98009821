//! `ConsoleStore` against both backends (a temp SQLite file and a fresh PostgreSQL database, as
//! in `store.rs`): per-token stats, windows, top sources, path and channel health, the filtered
//! feed and the live poll.

use canarykeys_core::{
    names::ordinary_user_name, AccessKeyId, AccountId, ManageSecret, Memo, OutputFormat, Region,
    TokenId, TokenKind,
};
use canarykeys_store::{
    ChannelKind, ConsoleStore, HitFilter, HitRecord, HitStore, NewDelivery, OutboxStore, SqlStore,
    TokenRecord, TokenStore,
};

const DAY: i64 = 86_400_000;
const NOW: i64 = 1_800_000_000_000;

fn token() -> TokenRecord {
    let account = AccountId::parse("210987654321").unwrap();
    TokenRecord {
        id: TokenId::generate(),
        kind: TokenKind::AwsKeys,
        memo: Memo::parse("console test").unwrap(),
        email: None,
        email_enabled: false,
        webhook: None,
        webhook_enabled: false,
        manage_hash: ManageSecret::generate().hash(),
        minter: "local".into(),
        access_key_id: AccessKeyId::generate_for(account),
        secret_sealed: "sealed".into(),
        username: ordinary_user_name(),
        account_id: account,
        region: Region::parse("us-east-1").unwrap(),
        output: OutputFormat::Json,
        created_at: NOW - 40 * DAY,
        expires_at: None,
        alerting: Default::default(),
    }
}

fn hit(token: &TokenId, id: &str, t: i64, ip: &str, path: &str) -> HitRecord {
    HitRecord {
        id: id.into(),
        token_id: token.clone(),
        event_id: format!("ev-{id}"),
        event_time: t,
        received_at: t + 1000,
        event_name: if ip.ends_with(".9") {
            "ListBuckets"
        } else {
            "GetCallerIdentity"
        }
        .into(),
        event_source: "sts.amazonaws.com".into(),
        region: "us-east-1".into(),
        source_ip: ip.into(),
        user_agent: "aws-cli".into(),
        error_code: None,
        error_message: None,
        account_id: None,
        access_key_id: None,
        tls_host: None,
        vpc_endpoint_id: None,
        request_id: None,
        path: path.into(),
        note: None,
        suppressed: None,
        raw: "{}".into(),
    }
}

fn delivery(token: &TokenId, id: &str, channel: ChannelKind, state: &str) -> NewDelivery {
    NewDelivery {
        id: id.into(),
        token_id: Some(token.clone()),
        message_id: format!("m-{id}"),
        kind: "hit".into(),
        channel,
        target: "soc@example.com".into(),
        payload: "{}".into(),
        state: state.into(),
        last_error: (state == "failed").then(|| "550 no such mailbox".into()),
        created_at: NOW - 1000,
    }
}

async fn suite(store: &SqlStore) {
    let (a, b) = (token(), token());
    store.insert_token(&a).await.unwrap();
    store.insert_token(&b).await.unwrap();
    store
        .record_hits(&[
            hit(&a.id, "h1", NOW - 2 * DAY, "203.0.113.7", "s3"),
            hit(&a.id, "h2", NOW - 3_600_000, "203.0.113.7", "eventbridge"),
            hit(&b.id, "h3", NOW - 10 * DAY, "198.51.100.9", "eventbridge"),
        ])
        .await
        .unwrap();

    let mut stats = store.token_hit_stats().await.unwrap();
    stats.sort_by_key(|s| s.hits);
    assert_eq!(stats.len(), 2);
    assert_eq!(
        (stats[1].token_id.clone(), stats[1].hits),
        (a.id.clone(), 2)
    );
    assert_eq!(stats[1].last_hit, Some(NOW - 3_600_000));

    assert_eq!(store.count_hits_since(NOW - DAY).await.unwrap(), 1);
    assert_eq!(store.count_hits_since(NOW - 30 * DAY).await.unwrap(), 3);
    let days = store.all_hits_per_day(NOW / DAY - 29).await.unwrap();
    assert_eq!(days.iter().map(|(_, n)| n).sum::<u64>(), 3);
    let top = store.top_sources(NOW - 30 * DAY, 10).await.unwrap();
    assert_eq!(top[0], ("203.0.113.7".to_owned(), 2));

    let paths = store.path_health().await.unwrap();
    let eb = paths.iter().find(|p| p.path == "eventbridge").unwrap();
    assert_eq!((eb.hits, eb.last_received), (2, NOW - 3_600_000 + 1000));

    store
        .insert_deliveries(&[
            delivery(&a.id, "d1", ChannelKind::Email, "failed"),
            delivery(&a.id, "d2", ChannelKind::Webhook, "pending"),
        ])
        .await
        .unwrap();
    store.mark_delivered("d2", NOW).await.unwrap();
    let channels = store.channel_health(NOW - DAY).await.unwrap();
    let email = channels.iter().find(|c| c.channel == "email").unwrap();
    assert_eq!(email.failed_recent, 1);
    assert_eq!(email.last_error.as_deref(), Some("550 no such mailbox"));
    let webhook = channels.iter().find(|c| c.channel == "webhook").unwrap();
    assert_eq!(
        (webhook.delivered, webhook.last_delivered_at),
        (1, Some(NOW))
    );

    let all = store.feed(&HitFilter::default(), 10, 0).await.unwrap();
    let ids: Vec<_> = all.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["h2", "h1", "h3"], "newest arrival first");
    let f = HitFilter {
        token: Some(a.id.clone()),
        since: Some(NOW - DAY),
        source_ip: Some("203.0.113.7".into()),
        event_name: Some("GetCallerIdentity".into()),
        until: Some(NOW),
    };
    let one = store.feed(&f, 10, 0).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].id, "h2");
    assert_eq!(
        store.feed(&HitFilter::default(), 1, 1).await.unwrap()[0].id,
        "h1"
    );

    let live = store
        .hits_received_since(NOW - 2 * DAY + 1000, 10)
        .await
        .unwrap();
    let ids: Vec<_> = live.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["h2", "h1"], "newest arrival first, from the bound on");
}

// `sqlite::suite` and `postgres::suite`.
canarykeys_testkit::on_both_backends!(suite);
