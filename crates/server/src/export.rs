//! A token's history as a download: JSON (whole records) or CSV. CSV cells that a spreadsheet
//! would run as a formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) are
//! neutralised with a leading apostrophe: the user agent and other fields are the attacker's.

use canarykeys_store::HitRecord;

use crate::render::rfc3339;

pub const CSV_HEADER: &[&str] = &[
    "event_time",
    "received_at",
    "event_name",
    "event_source",
    "region",
    "source_ip",
    "user_agent",
    "error_code",
    "error_message",
    "account_id",
    "access_key_id",
    "tls_host",
    "vpc_endpoint_id",
    "request_id",
    "event_id",
    "path",
    "note",
    "suppressed",
];

/// One hit as JSON, as the API and the JSON export show it.
/// Quotes a CSV cell (RFC 4180) after neutralising formula starts.
pub fn csv_cell(value: &str) -> String {
    let neutral = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if neutral.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

pub fn to_csv(hits: &[HitRecord]) -> String {
    let mut out = CSV_HEADER.join(",");
    out.push('\n');
    for h in hits {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        let row = [
            rfc3339(h.event_time),
            rfc3339(h.received_at),
            h.event_name.clone(),
            h.event_source.clone(),
            h.region.clone(),
            h.source_ip.clone(),
            h.user_agent.clone(),
            opt(&h.error_code),
            opt(&h.error_message),
            opt(&h.account_id),
            opt(&h.access_key_id),
            opt(&h.tls_host),
            opt(&h.vpc_endpoint_id),
            opt(&h.request_id),
            h.event_id.clone(),
            h.path.clone(),
            opt(&h.note),
            opt(&h.suppressed),
        ];
        out.push_str(
            &row.iter()
                .map(|c| csv_cell(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    out
}

pub fn to_json(hits: &[HitRecord]) -> String {
    let hits = hits.iter().map(crate::views::HitView::of).collect();
    serde_json::to_string_pretty(&crate::views::HitsExport { hits }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_cells_quoted() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-cmd"), "'-cmd");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("aws-cli/2.0"), "aws-cli/2.0");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
    }
}
