//! `/console/audit`: the audit log, newest first, paged; and its export as CSV (cells
//! neutralised against spreadsheet formulas) or JSON.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use minijinja::{context, Value};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::export::csv_cell;
use crate::http::extract::caller::ConsoleOperator;
use crate::http::html::console_page;
use crate::http::html::{fail, UiError};
use crate::http::{ApiError, AppState};
use crate::render::{human_time, rfc3339};
use crate::services::access::AuditEntry;

const PAGE: u32 = 50;
/// The export reads the log in chunks of this many, up to `EXPORT_MAX` lines.
const CHUNK: u32 = 1000;
const EXPORT_MAX: usize = 100_000;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct PageQuery {
    page: u32,
}

pub(super) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    op: ConsoleOperator,
    Query(q): Query<PageQuery>,
) -> Result<Response, UiError> {
    let page = q.page;
    let mut entries = state
        .access
        .list_audit(PAGE + 1, page.saturating_mul(PAGE))
        .await;
    let more = entries.len() > PAGE as usize;
    entries.truncate(PAGE as usize);
    let rows: Vec<_> = entries
        .iter()
        .map(|e| {
            json!({"at": human_time(e.at), "actor": e.actor, "action": e.action,
                   "target": e.target, "details": e.details})
        })
        .collect();
    console_page(
        &state,
        &headers,
        &op,
        "console/audit.html",
        "audit",
        context! {
            entries => Value::from_serialize(rows),
            next_page => more.then_some(page + 1),
            prev_page => page.checked_sub(1),
        },
    )
}

#[derive(Deserialize)]
pub(super) struct ExportQuery {
    format: String,
}

pub(super) async fn export(
    State(state): State<AppState>,
    _op: ConsoleOperator,
    Query(q): Query<ExportQuery>,
) -> Result<Response, UiError> {
    let mut all: Vec<AuditEntry> = Vec::new();
    loop {
        let chunk = state.access.list_audit(CHUNK, all.len() as u32).await;
        let done = chunk.len() < CHUNK as usize;
        all.extend(chunk);
        if done || all.len() >= EXPORT_MAX {
            break;
        }
    }
    let (body, content_type, file) = match q.format.as_str() {
        "csv" => (to_csv(&all), "text/csv; charset=utf-8", "audit.csv"),
        "json" => (to_json(&all), "application/json", "audit.json"),
        _ => {
            return Err(fail(
                &state,
                ApiError::BadRequest("format is csv or json".into()),
            ))
        }
    };
    let disposition = format!("attachment; filename=\"{file}\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// Actor, target and details are free text (names, memos): every cell goes through `csv_cell`.
fn to_csv(entries: &[AuditEntry]) -> String {
    let mut out = String::from("time,actor,action,target,details\n");
    for e in entries {
        let cells = [
            rfc3339(e.at),
            e.actor.clone(),
            e.action.clone(),
            e.target.clone(),
            e.details.clone(),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// The audit export's JSON document.
#[derive(Serialize)]
struct AuditExport<'a> {
    entries: Vec<AuditExportRow<'a>>,
}

#[derive(Serialize)]
struct AuditExportRow<'a> {
    id: &'a str,
    time: String,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    details: &'a str,
}

fn to_json(entries: &[AuditEntry]) -> String {
    let entries = entries
        .iter()
        .map(|e| AuditExportRow {
            id: &e.id,
            time: rfc3339(e.at),
            actor: &e.actor,
            action: &e.action,
            target: &e.target,
            details: &e.details,
        })
        .collect();
    serde_json::to_string(&AuditExport { entries }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_neutralises_formulas() {
        let e = AuditEntry {
            id: "1".into(),
            at: 0,
            actor: "=cmd|' /C calc'!A0".into(),
            action: "tokens.bulk_create".into(),
            target: "a, b".into(),
            details: "-1".into(),
        };
        let csv = to_csv(&[e]);
        let line = csv.lines().nth(1).unwrap();
        assert!(line.contains("'=cmd"), "{line}");
        assert!(line.contains("\"a, b\"") && line.contains("'-1"), "{line}");
    }
}
