//! A token as templates see it: its fields, its credentials with download links, and the notice
//! local keys carry.

use canarykeys_core::{AwsCredentials, CredentialsFormat};
use canarykeys_store::TokenRecord;
use minijinja::context;

use crate::render::{human_time, user_arn, LOCAL_KEYS_NOTICE};

pub fn notice(t: &TokenRecord) -> Option<&'static str> {
    (t.minter == "local").then_some(LOCAL_KEYS_NOTICE)
}

pub fn token_ctx(t: &TokenRecord) -> minijinja::Value {
    context! {
        id => t.id.as_str(),
        memo => t.memo.as_str(),
        kind => t.kind.label(),
        created_at => human_time(t.created_at),
        minter => t.minter.clone(),
        email => t.email.as_ref().map(|e| e.as_str().to_owned()),
        email_enabled => t.email_enabled,
        email_disabled_reason => t.alerting.email_disabled_reason.clone(),
        webhook_disabled_reason => t.alerting.webhook_disabled_reason.clone(),
        webhook_url => t.webhook.as_ref().map(|w| w.as_str().to_owned()),
        webhook_enabled => t.webhook_enabled,
    }
}

pub fn creds_ctx(t: &TokenRecord, c: &AwsCredentials, secret: &str) -> minijinja::Value {
    let downloads: Vec<_> = CredentialsFormat::ALL
        .iter()
        .map(|f| {
            serde_json::json!({
                "format": f.as_str(),
                "file": f.file_name(&c.username),
                "href": format!("/manage/{}/download?format={}&s={secret}", t.id, f.as_str()),
            })
        })
        .collect();
    context! {
        access_key_id => c.access_key_id.as_str(),
        secret_access_key => c.secret_access_key.expose(),
        region => c.region.as_str(),
        output => c.output.as_str(),
        username => c.username.as_str(),
        account_id => c.account_id.to_string(),
        arn => user_arn(c),
        session_token => c.session.as_ref().map(|s| s.token.expose().to_owned()),
        expiration => c.session.as_ref().map(|s| human_time(s.expires_at)),
        downloads => minijinja::Value::from_serialize(downloads),
    }
}
