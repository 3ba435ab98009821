//! Bulk create: a CSV of memos (one a line, optional `memo` header) with shared alert channels
//! becomes that many tokens, each made through `TokenService::create` so every rule applies,
//! and comes back as a ZIP with one folder per token (`credentials`, `config`, `manage.txt`).

use std::io::Write;

use axum::extract::{Multipart, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use canarykeys_core::{CredentialsFormat, NewToken, NewTokenInput};
use serde_json::json;
use zip::write::SimpleFileOptions;

use crate::http::extract::caller::ConsoleOperator;
use crate::http::html::check_csrf;
use crate::http::html::{fail, UiError};
use crate::http::{ApiError, AppState};
use crate::services::{Actor, CreatedToken};

/// One upload makes at most this many tokens: each is a minted key (an IAM user with the IAM
/// minter), so a slip should not make thousands.
const MAX_MEMOS: usize = 200;

/// The memos of a CSV: one per line, the first cell of the line; a `memo` header is skipped and
/// RFC 4180 quotes are undone. Blank lines are ignored.
pub(super) fn memos(csv: &str) -> Vec<String> {
    let mut out: Vec<String> = csv
        .lines()
        .map(|l| {
            let l = l.trim();
            match l.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
                Some(inner) => inner.replace("\"\"", "\""),
                None => l.to_owned(),
            }
        })
        .filter(|l| !l.is_empty())
        .collect();
    if out.first().is_some_and(|h| h.eq_ignore_ascii_case("memo")) {
        out.remove(0);
    }
    out
}

fn bad(state: &AppState, msg: impl Into<String>) -> UiError {
    fail(state, ApiError::BadRequest(msg.into()))
}

pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    op: ConsoleOperator,
    mut multipart: Multipart,
) -> Result<Response, UiError> {
    let (mut csrf, mut csv, mut email, mut webhook, mut kind) = (
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    );
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(&state, format!("the upload could not be read: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let text = field
            .text()
            .await
            .map_err(|_| bad(&state, "the CSV must be UTF-8 text"))?;
        match name.as_str() {
            "csrf" => csrf = text,
            "file" => csv = text,
            "email" => email = text,
            "webhook_url" => webhook = text,
            "kind" => kind = text,
            _ => {}
        }
    }
    check_csrf(&state, &headers, &csrf)?;
    let memos = memos(&csv);
    if memos.is_empty() || memos.len() > MAX_MEMOS {
        return Err(bad(
            &state,
            format!("the CSV must hold 1 to {MAX_MEMOS} memos"),
        ));
    }
    // Every line is checked before anything is minted, so a bad line 90 leaves nothing behind.
    let mut parsed = Vec::with_capacity(memos.len());
    for (i, memo) in memos.iter().enumerate() {
        let input = NewTokenInput {
            // Empty: the default kind (`aws_keys`).
            kind: Some(kind.clone()),
            memo: Some(memo.clone()),
            email: Some(email.clone()).filter(|e| !e.trim().is_empty()),
            webhook_url: Some(webhook.clone()).filter(|w| !w.trim().is_empty()),
            ..Default::default()
        };
        let new = NewToken::parse(&input).map_err(|errors| {
            let problems: Vec<_> = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.problem))
                .collect();
            bad(&state, format!("memo {}: {}", i + 1, problems.join("; ")))
        })?;
        parsed.push(new);
    }
    let details =
        json!({"count": parsed.len(), "email": email, "webhook_url": webhook}).to_string();
    let created = state
        .tokens
        .create_all(parsed, &Actor::Operator(op.0.name.clone()), &details)
        .await
        .map_err(|e| fail(&state, e))?;
    let zip = archive(&state, &created)
        .map_err(|e| fail(&state, ApiError::Internal(format!("zip: {e:#}"))))?;
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/zip"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"canarykeys-tokens.zip\"",
            ),
        ],
        zip,
    )
        .into_response())
}

/// One folder per token, named by its id (memos are free text, ids are safe file names).
fn archive(state: &AppState, created: &[CreatedToken]) -> zip::result::ZipResult<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o600);
    for c in created {
        let dir = c.token.id.as_str();
        for f in [CredentialsFormat::Credentials, CredentialsFormat::Config] {
            zip.start_file(format!("{dir}/{}", f.as_str()), opts)?;
            zip.write_all(f.render(&c.credentials).as_bytes())?;
        }
        zip.start_file(format!("{dir}/manage.txt"), opts)?;
        let url = state.manage_url(&c.token.id, c.manage_secret.expose());
        write!(zip, "memo: {}\nmanage: {url}\n", c.token.memo.as_str())?;
        if let Some(refresh) = &c.refresh_secret {
            writeln!(zip, "refresh secret: {}", refresh.expose())?;
        }
    }
    Ok(zip.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::memos;

    #[test]
    fn reads_memos_with_and_without_header() {
        assert_eq!(
            memos("memo\nweb01\n\n\"db, \"\"prod\"\"\"\r\n"),
            ["web01", "db, \"prod\""]
        );
        assert_eq!(memos("laptop\nci"), ["laptop", "ci"]);
        assert!(memos("memo\n").is_empty());
    }
}
