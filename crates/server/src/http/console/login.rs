//! The sign-in page. Only the form: `POST /login` (checking the password, the session cookie)
//! belongs to the access side.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;

use super::super::ui::{page, render, UiError};
use super::super::{csrf, AppState};

#[derive(Deserialize, Default)]
pub(super) struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

/// Only a local path may be a `next`: anything else (`//evil.example`, `https://…`) would
/// make the sign-in form an open redirect.
pub(super) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/console",
    }
}

pub(super) async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, UiError> {
    let token = csrf::token_for(&headers, state.secure_cookies);
    let html = render(
        &state,
        "console/login.html",
        context! {
            csrf => token.value.clone(),
            next => safe_next(q.next.as_deref()),
            error => None::<String>,
        },
    )?;
    Ok(page(html, StatusCode::OK, &token))
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_a_local_path_only() {
        assert_eq!(safe_next(Some("/console/alerts")), "/console/alerts");
        assert_eq!(safe_next(Some("//evil.example/")), "/console");
        assert_eq!(safe_next(Some("https://evil.example/")), "/console");
        assert_eq!(safe_next(Some("/\\evil.example")), "/console");
        assert_eq!(safe_next(None), "/console");
    }
}
