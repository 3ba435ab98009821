//! The gate: what it sees of each usable record (the record's own view of those fields, inside
//! every wrapper) and that what it refuses is counted, never built or skipped.

use std::sync::Mutex;

use super::*;

/// Lets through the records of one key, and keeps every view it was shown.
struct OneKey {
    key: &'static str,
    seen: Mutex<Vec<String>>,
}

impl Gate for OneKey {
    fn may_match(&self, who: &Who<'_>) -> bool {
        self.seen.lock().unwrap().push(format!("{who:?}"));
        who.access_key_id == Some(self.key)
    }
}

fn one_key() -> OneKey {
    OneKey {
        key: "AKIAKEEPKEEPKEEP1234",
        seen: Mutex::new(Vec::new()),
    }
}

fn with_key(id: &str, key: &str) -> Value {
    let mut r = rec(id);
    r["userIdentity"]["accessKeyId"] = json!(key);
    r
}

#[test]
fn refused_records_are_counted_not_built() {
    let mut envelope_inner = with_key("e-4", "AKIAKEEPKEEPKEEP1234");
    envelope_inner["errorCode"] = json!("AccessDenied");
    let file = json!({"Records": [
        with_key("e-1", "AKIAKEEPKEEPKEEP1234"),
        with_key("e-2", "AKIAOTHEROTHEROTHER1"),
        {"eventVersion": "1.08", "eventSource": "s3.amazonaws.com", "eventName": "GetObject"},
        {"detail-type": "AWS API Call via CloudTrail", "time": "2023-07-10T11:41:52Z",
         "detail": envelope_inner},
        with_key("e-5", "AKIAOTHEROTHEROTHER2"),
    ]});
    let bytes = serde_json::to_vec(&file).unwrap();
    let gate = one_key();
    let parsed = parse_gated(&bytes, &Limits::default(), &gate).unwrap();
    assert_eq!(parsed.format, Format::LogFile);
    let ids: Vec<&str> = parsed.records.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids, ["e-1", "e-4"]);
    assert_eq!(parsed.gated, 2);
    // The record without an identity is a skip, as without a gate; the gate never saw it.
    assert_eq!(parsed.skipped.len(), 1);
    assert_eq!(parsed.skipped[0].index, 2);
    assert_eq!(gate.seen.lock().unwrap().len(), 4);
    // The same input without a gate: the same records, skips and order, nothing gated.
    let open = parse(&bytes, &Limits::default()).unwrap();
    assert_eq!((open.records.len(), open.gated), (4, 0));
    assert_eq!(open.skipped, parsed.skipped);
}

#[test]
fn the_gate_sees_the_fields_as_the_record_holds_them() {
    let mut r = rec("e-1");
    r["userIdentity"]["accountId"] = json!("");
    r["userIdentity"]["userName"] = json!("svc-\u{0}backup");
    r["recipientAccountId"] = json!(123_456_789_012_u64);
    r["errorCode"] = json!("");
    let envelope = json!({"detail-type": "AWS API Call via CloudTrail", "detail": r});
    let gate = one_key();
    let parsed = parse_gated(
        &serde_json::to_vec(&envelope).unwrap(),
        &Limits::default(),
        &gate,
    )
    .unwrap();
    assert_eq!((parsed.records.len(), parsed.gated), (0, 1));
    let want = Who {
        access_key_id: Some("AKIAEXAMPLEEXAMPLE12"),
        account_id: None,
        // A NUL is replaced, as in every text the parser keeps.
        user_name: Some("svc-\u{fffd}backup"),
        recipient_account_id: None,
        event_name: Some("GetCallerIdentity"),
        event_source: Some("sts.amazonaws.com"),
        failed: false,
    };
    assert_eq!(*gate.seen.lock().unwrap(), [format!("{want:?}")]);
    // What the record itself holds, built without a gate, is the same.
    let built = parse(&serde_json::to_vec(&envelope).unwrap(), &Limits::default()).unwrap();
    let id = &built.records[0].identity;
    assert_eq!(id.user_name.as_deref(), want.user_name);
    assert_eq!(id.account_id.as_deref(), want.account_id);
    assert_eq!(built.records[0].recipient_account_id, None);
    assert_eq!(built.records[0].error_code, None);
}

#[test]
fn a_stream_counts_what_the_gate_refused_in_its_chunks() {
    let records: Vec<Value> = (0..2_500)
        .map(|i| match i % 1_000 {
            7 => with_key(&format!("e-{i}"), "AKIAKEEPKEEPKEEP1234"),
            _ => with_key(&format!("e-{i}"), "AKIAOTHEROTHEROTHER1"),
        })
        .collect();
    let file = gz(&serde_json::to_vec(&json!({ "Records": records })).unwrap());
    let gate = one_key();
    let (mut kept, mut gated) = (Vec::new(), 0);
    let summary = parse_stream_gated(|| Ok(&file[..]), &Limits::default(), &gate, &mut |c| {
        kept.extend(c.records.into_iter().map(|r| r.event_id));
        gated += c.gated;
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(kept, ["e-7", "e-1007", "e-2007"]);
    assert_eq!(gated, 2_497);
    assert_eq!((summary.records, summary.skipped), (2_500, 0));
    // A file whose every record is refused is still a log file of records, not "not CloudTrail".
    let none = OneKey {
        key: "AKIANONENONENONE1234",
        seen: Mutex::new(Vec::new()),
    };
    let parsed = parse_gated(&file, &Limits::default(), &none).unwrap();
    assert_eq!((parsed.format, parsed.records.len()), (Format::LogFile, 0));
    assert_eq!(parsed.gated, 2_500);
}
