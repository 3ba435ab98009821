//! What handlers take from a request, shared by every router and importing none: who is calling
//! (`caller`), from where (`client`), the CSRF check (`csrf`), and the small header parsers all
//! of them use. One definition each: a second bearer parser or redirect guard would drift.

pub mod admission;
pub mod caller;
pub mod client;
pub mod csrf;
pub mod manage;
pub mod origin;
pub mod test_alerts;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Query};
use axum::http::{header, HeaderMap};
use serde::Deserialize;

use super::ApiError;

/// The value of cookie `name`, if the request sends it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The credential of `Authorization: Bearer <value>` (the scheme is case-insensitive).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
}

/// Where to send a browser after sign-in: only a path on this server. `//evil.example`,
/// `/\evil.example` (a browser reads `\` as `/`) and absolute URLs are other hosts, so they
/// fall back to the console (no open redirect).
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => "/console",
    }
}

/// JSON bodies with our error mapping (400 / 413 / 415 / 422 as JSON) instead of axum's text.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// The largest page an API list returns.
pub const MAX_LIMIT: u32 = 500;
/// The page size when `limit` is left out.
pub const DEFAULT_LIMIT: u32 = 50;

/// The query string as sent, before `PageParams::checked`. The bounds in the schema are the ones
/// `checked` enforces (a number past `u32` fails to parse: 400 too).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RawPageQuery {
    /// How many items to return (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// How many items to skip: 0 to 4294967295.
    #[param(minimum = 0)]
    offset: Option<u32>,
}

/// `?limit=&offset=` of an API list, checked: `limit` is 1 to `MAX_LIMIT`.
#[derive(Clone, Copy, Debug)]
pub struct PageParams {
    pub limit: u32,
    pub offset: u32,
}

impl PageParams {
    pub fn checked(q: Result<Query<RawPageQuery>, QueryRejection>) -> Result<Self, ApiError> {
        let Query(page) = q?;
        let limit = page.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit is between 1 and {MAX_LIMIT}"
            )));
        }
        Ok(Self {
            limit,
            offset: page.offset.unwrap_or(0),
        })
    }
}

/// The token list's query string as sent: a page by `offset`, or after a cursor (`next` of the
/// page before), which costs the same however deep the page is.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RawTokensQuery {
    /// How many tokens to return (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// How many tokens to skip (after the cursor, when one is given): 0 to 4294967295.
    #[param(minimum = 0)]
    offset: Option<u32>,
    /// `next` of the page before: this page starts after its last token. A cursor whose token
    /// is gone still works (the order is by creation time).
    #[param(pattern = r"^[0-9]{1,18}\.[a-z2-7]{25}[aeimquy4]$")]
    after: Option<String>,
}

/// `RawTokensQuery`, checked.
#[derive(Clone, Debug)]
pub struct TokensParams {
    pub page: PageParams,
    pub after: Option<canarykeys_core::TokenCursor>,
}

impl TokensParams {
    pub fn checked(q: Result<Query<RawTokensQuery>, QueryRejection>) -> Result<Self, ApiError> {
        let Query(q) = q?;
        let page = PageParams::checked(Ok(Query(RawPageQuery {
            limit: q.limit,
            offset: q.offset,
        })))?;
        let after = q
            .after
            .as_deref()
            .map(canarykeys_core::TokenCursor::parse)
            .transpose()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(Self { page, after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_local_path_only() {
        assert_eq!(safe_next(Some("/console/alerts")), "/console/alerts");
        assert_eq!(safe_next(Some("//evil.example/")), "/console");
        assert_eq!(safe_next(Some("https://evil.example/")), "/console");
        assert_eq!(safe_next(Some("/\\evil.example")), "/console");
        assert_eq!(safe_next(Some("/a\\b")), "/console");
        assert_eq!(safe_next(Some("/a\nb")), "/console");
        assert_eq!(safe_next(None), "/console");
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_trimmed() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
