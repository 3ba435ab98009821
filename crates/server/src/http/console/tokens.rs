//! `/console/tokens`: every token with its hits, filtered by memo, kind, minter, account,
//! status, last hit and expiry, with a banner for each listed token AWS found in public; and
//! bulk delete through `TokenService::delete`, so a minted key is revoked before its row goes.

use std::collections::HashMap;

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use canarykeys_store::{TokenHitStats, TokenRecord};
use minijinja::{context, Value};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::http::extract::caller::ConsoleOperator;
use crate::http::html::{check_csrf, console_page, when};
use crate::http::html::{fail, UiError};
use crate::http::{ApiError, AppState};
use crate::render::human_time;
use crate::services::{Actor, AuditAction, ExposureItem, ServiceError};

const DAY: i64 = 86_400_000;
/// More than this in one bulk delete is refused: one form should not wipe an installation.
const MAX_BULK_DELETE: usize = 500;
/// The newest this many exposures get banners (at most two per token, so hundreds of tokens).
const EXPOSURE_SCAN: u32 = 1000;

/// The filters, as the form's query string carries them; empty means "any".
#[derive(Deserialize, Serialize, Default)]
#[serde(default)]
pub(super) struct TokenFilter {
    /// One token by id (where the alert feed links to).
    token: String,
    /// Substring of the memo, case-insensitive.
    q: String,
    kind: String,
    minter: String,
    account: String,
    /// `active`, `expired`, `hits` or `quiet` (no hits).
    status: String,
    /// Last hit within this many days.
    hit_within: String,
    /// Expires within this many days.
    expires_within: String,
}

impl TokenFilter {
    fn keeps(&self, t: &TokenRecord, last_hit: Option<i64>, now: i64) -> bool {
        let days = |s: &str| s.trim().parse::<i64>().ok().map(|d| d.saturating_mul(DAY));
        let expired = t.expires_at.is_some_and(|e| e <= now);
        (self.token.is_empty() || t.id.as_str() == self.token)
            && (self.q.is_empty()
                || t.memo
                    .as_str()
                    .to_lowercase()
                    .contains(&self.q.to_lowercase()))
            && (self.kind.is_empty() || t.kind.as_str() == self.kind)
            && (self.minter.is_empty() || t.minter == self.minter)
            && (self.account.is_empty() || t.account_id.to_string() == self.account.trim())
            && match self.status.as_str() {
                "active" => !expired,
                "expired" => expired,
                "hits" => last_hit.is_some(),
                "quiet" => last_hit.is_none(),
                _ => true,
            }
            && days(&self.hit_within).is_none_or(|d| last_hit.is_some_and(|h| h >= now - d))
            && days(&self.expires_within).is_none_or(|d| t.expires_at.is_some_and(|e| e <= now + d))
    }
}

pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    op: ConsoleOperator,
    Query(filter): Query<TokenFilter>,
) -> Result<Response, UiError> {
    let (tokens, stats) = state
        .console
        .tokens_with_stats()
        .await
        .map_err(|e| fail(&state, e))?;
    let (exposures, _) = state
        .exposures
        .feed(None, EXPOSURE_SCAN, 0)
        .await
        .map_err(|e| fail(&state, e))?;
    let mut exposed: HashMap<String, Vec<ExposureItem>> = HashMap::new();
    for e in exposures {
        exposed.entry(e.token_id.clone()).or_default().push(e);
    }
    let now = state.clock.now_millis();
    let mut minters: Vec<String> = tokens.iter().map(|t| t.minter.clone()).collect();
    let mut accounts: Vec<String> = tokens.iter().map(|t| t.account_id.to_string()).collect();
    for v in [&mut minters, &mut accounts] {
        v.sort();
        v.dedup();
    }
    // By token id: a scan of the stats per token was quadratic in the fleet's size.
    let stats: HashMap<&str, &TokenHitStats> =
        stats.iter().map(|s| (s.token_id.as_str(), s)).collect();
    let rows: Vec<_> = tokens
        .iter()
        .filter_map(|t| {
            let s = stats.get(t.id.as_str()).copied();
            let last_hit = s.and_then(|s| s.last_hit);
            filter.keeps(t, last_hit, now).then(|| {
                json!({
                    "id": t.id.as_str(),
                    "memo": t.memo.as_str(),
                    "kind": t.kind.label(),
                    "minter": t.minter,
                    "account": t.account_id.to_string(),
                    "access_key_id": t.access_key_id.as_str(),
                    "created": human_time(t.created_at),
                    "expires": t.expires_at.map(human_time),
                    "expired": t.expires_at.is_some_and(|e| e <= now),
                    "hits": s.map_or(0, |s| s.hits),
                    "last_hit": when(last_hit),
                    "exposures": exposed.get(t.id.as_str()).map_or(&[][..], Vec::as_slice),
                })
            })
        })
        .collect();
    let kinds: Vec<_> = canarykeys_core::TokenKind::ALL
        .iter()
        .map(|k| json!({"value": k.as_str(), "label": k.label()}))
        .collect();
    console_page(
        &state,
        &headers,
        &op,
        "console/tokens.html",
        "tokens",
        context! {
            tokens => Value::from_serialize(rows),
            total => tokens.len(),
            filter => Value::from_serialize(&filter),
            kinds => Value::from_serialize(kinds),
            minters => minters,
            accounts => accounts,
        },
    )
}

/// Deletes the checked tokens. The form is a list of `id` fields, which only a pair list
/// (not a struct) can hold.
pub(super) async fn bulk_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    op: ConsoleOperator,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, UiError> {
    let Form(pairs) = form.map_err(|e| fail(&state, e))?;
    let csrf = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map_or("", |(_, v)| v.as_str());
    check_csrf(&state, &headers, csrf)?;
    let ids: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| v.as_str())
        .collect();
    if ids.is_empty() || ids.len() > MAX_BULK_DELETE {
        return Err(fail(
            &state,
            ApiError::BadRequest(format!("choose between 1 and {MAX_BULK_DELETE} tokens")),
        ));
    }
    let actor = Actor::Operator(op.0.name.clone());
    let mut deleted = Vec::new();
    for id in ids {
        // A token deleted meanwhile (by another operator, or the expiry job) is not an error.
        let token = match state.tokens.get(id).await {
            Ok(t) => t,
            Err(ServiceError::NotFound) => continue,
            Err(e) => return Err(fail(&state, e)),
        };
        state
            .tokens
            .delete(&token, &actor)
            .await
            .map_err(|e| fail(&state, e))?;
        deleted.push(token.id.to_string());
    }
    let details = json!({"count": deleted.len()}).to_string();
    state
        .tokens
        .record_action(
            &actor,
            AuditAction::TokensBulkDelete,
            &deleted.join(" "),
            &details,
        )
        .await
        .map_err(|e| fail(&state, e))?;
    Ok(Redirect::to("/console/tokens").into_response())
}
