//! Responses more than one router sends, importing no router: the hit history as a download.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::export;

/// A token's whole hit history as a JSON or CSV file (the API and the manage page's links).
pub async fn history_download(
    state: &AppState,
    token: &canarykeys_store::TokenRecord,
    format: Option<&str>,
) -> Result<Response, ApiError> {
    let (hits, _) = state.tokens.hits(token, u32::MAX, 0).await?;
    let (body, content_type, ext) = match format.unwrap_or("json") {
        "json" => (export::to_json(&hits), "application/json", "json"),
        "csv" => (export::to_csv(&hits), "text/csv; charset=utf-8", "csv"),
        _ => return Err(ApiError::BadRequest("format is json or csv".into())),
    };
    let disposition = format!("attachment; filename=\"history-{}.{ext}\"", token.id);
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
