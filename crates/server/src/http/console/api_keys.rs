//! `/console/api-keys`: list, create (the key is shown once, on the result page) and revoke.
//! The keys themselves are made, hashed and audited by `AccessService`.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use minijinja::{context, Value};
use serde_json::json;

use crate::http::extract::caller::ConsoleOperator;
use crate::http::html::{check_csrf, console_page, console_page_status, when};
use crate::http::html::{fail, UiError};
use crate::http::AppState;
use crate::render::human_time;
use crate::services::access::{KeyBudget, Scope};

fn scopes_ctx() -> Value {
    Value::from_serialize(Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}

async fn keys_ctx(state: &AppState) -> Value {
    let keys: Vec<_> = state
        .access
        .list_api_keys()
        .await
        .iter()
        .map(|k| {
            json!({
                "id": k.id, "name": k.name,
                "scopes": k.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
                "per_minute": k.budget.per_minute,
                "live_tokens": k.budget.live_tokens,
                "created": human_time(k.created_at),
                "last_used": when(k.last_used_at),
                "revoked": k.revoked_at.map(human_time),
            })
        })
        .collect();
    Value::from_serialize(keys)
}

pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    op: ConsoleOperator,
) -> Result<Response, UiError> {
    let keys = keys_ctx(&state).await;
    console_page(
        &state,
        &headers,
        &op,
        "console/api_keys.html",
        "api-keys",
        context! { keys => keys, scopes => scopes_ctx(), created_key => None::<String>, error => None::<String> },
    )
}

/// Create: fields `csrf`, `name` and one `scope` per checked box (hence a pair list).
pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    op: ConsoleOperator,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, UiError> {
    let Form(pairs) = form.map_err(|e| fail(&state, e))?;
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    check_csrf(&state, &headers, field("csrf"))?;
    let scopes: Vec<Scope> = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .filter_map(|(_, v)| Scope::ALL.into_iter().find(|s| s.as_str() == v))
        .collect();
    // Left empty, each part of the budget keeps its default; anything else must be a number.
    let number = |name: &str, default: u32| match field(name).trim() {
        "" => Ok(default),
        text => text.parse::<u32>().map_err(|_| {
            crate::services::AccessError::Invalid(format!("{name} is a whole number above 0"))
        }),
    };
    let budget = number("per_minute", KeyBudget::DEFAULT.per_minute).and_then(|per_minute| {
        Ok(KeyBudget {
            per_minute,
            live_tokens: number("live_tokens", KeyBudget::DEFAULT.live_tokens)?,
        })
    });
    let made = match budget {
        Ok(budget) => {
            state
                .access
                .create_api_key_with_budget(&op.0, field("name"), &scopes, budget)
                .await
        }
        Err(e) => Err(e),
    };
    let (status, created, error) = match made {
        Ok((info, key)) => (
            StatusCode::CREATED,
            Some(json!({"name": info.name, "key": key})),
            None,
        ),
        Err(crate::services::AccessError::Invalid(msg)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, None, Some(msg))
        }
        Err(e) => return Err(fail(&state, e)),
    };
    let keys = keys_ctx(&state).await;
    console_page_status(
        &state,
        &headers,
        &op,
        "console/api_keys.html",
        "api-keys",
        context! {
            keys => keys,
            scopes => scopes_ctx(),
            created_key => created.map(Value::from_serialize),
            error => error,
        },
        status,
    )
}

#[derive(serde::Deserialize)]
pub(super) struct RevokeForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    op: ConsoleOperator,
    Path(id): Path<String>,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> Result<Response, UiError> {
    let Form(form) = form.map_err(|e| fail(&state, e))?;
    check_csrf(&state, &headers, &form.csrf)?;
    state
        .access
        .revoke_api_key(&op.0, &id)
        .await
        .map_err(|e| fail(&state, e))?;
    Ok(Redirect::to("/console/api-keys").into_response())
}
