//! Records shared by the store's test files: a token, a hit, a delivery.

use canarykeys_core::{
    names::ordinary_user_name, AccessKeyId, AccountId, Email, ManageSecret, Memo, OutputFormat,
    Region, TokenId, TokenKind, WebhookUrl,
};
use canarykeys_store::{ChannelKind, HitRecord, NewDelivery, TokenRecord};

pub fn token(created_at: i64) -> TokenRecord {
    let account = AccountId::parse("210987654321").unwrap();
    TokenRecord {
        id: TokenId::generate(),
        kind: TokenKind::AwsKeys,
        memo: Memo::parse("web01 /srv/app/.env").unwrap(),
        email: Some(Email::parse("soc@example.com").unwrap()),
        email_enabled: true,
        webhook: Some(WebhookUrl::parse("https://hooks.example.com/x").unwrap()),
        webhook_enabled: true,
        manage_hash: ManageSecret::generate().hash(),
        minter: "local".into(),
        access_key_id: AccessKeyId::generate_for(account),
        secret_sealed: "sealed".into(),
        username: ordinary_user_name(),
        account_id: account,
        region: Region::parse("us-east-1").unwrap(),
        output: OutputFormat::Json,
        created_at,
        expires_at: None,
        alerting: Default::default(),
    }
}

pub fn hit(token: &TokenId, event_id: &str, t: i64) -> HitRecord {
    HitRecord {
        id: format!("h-{event_id}"),
        token_id: token.clone(),
        event_id: event_id.into(),
        event_time: t,
        received_at: t + 1000,
        event_name: "GetCallerIdentity".into(),
        event_source: "sts.amazonaws.com".into(),
        region: "us-east-1".into(),
        source_ip: "203.0.113.7".into(),
        user_agent: "<script>alert(1)</script>".into(),
        error_code: Some("AccessDenied".into()),
        error_message: None,
        account_id: Some("210987654321".into()),
        access_key_id: None,
        tls_host: Some("sts.amazonaws.com".into()),
        vpc_endpoint_id: None,
        request_id: Some("req-1".into()),
        path: "cloudwatch-logs".into(),
        note: None,
        suppressed: None,
        raw: "{}".into(),
    }
}

pub fn delivery(token: &TokenRecord, message: &str, channel: ChannelKind) -> NewDelivery {
    NewDelivery {
        id: format!("d-{message}-{}", channel.as_str()),
        token_id: Some(token.id.clone()),
        message_id: message.into(),
        kind: "hit".into(),
        channel,
        target: "soc@example.com".into(),
        payload: "{}".into(),
        state: "pending".into(),
        last_error: None,
        created_at: 100,
    }
}
