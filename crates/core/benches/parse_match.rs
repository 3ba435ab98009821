//! Criterion benches for the two steps every record takes: parsing (one EventBridge event, the
//! one-event trip; and a 1,000-record log file) and matching (key id parse, account decode and a
//! lookup among 10,000 live keys). `cargo bench -p canarykeys-core`.

use std::collections::HashMap;

use canarykeys_core::cloudtrail::{self, Limits};
use canarykeys_core::{AccessKeyId, AccountId};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn record(key: &str, i: usize) -> String {
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","accessKeyId":"{key}","accountId":"123456789012","userName":"bench"}},"eventTime":"2026-11-30T10:00:00Z","eventSource":"sts.amazonaws.com","eventName":"GetCallerIdentity","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.7","userAgent":"aws-cli/2.15.0","eventID":"ev-{i}","eventType":"AwsApiCall","recipientAccountId":"123456789012"}}"#
    )
}

fn parse(c: &mut Criterion) {
    let limits = Limits {
        max_decompressed_bytes: 64 << 20,
        ..Limits::DEFAULT
    };
    let key = "AKIAIOSFODNN7EXAMPLE";
    let event = format!(
        r#"{{"version":"0","id":"x","detail-type":"AWS API Call via CloudTrail","source":"aws.sts","account":"123456789012","time":"2026-11-30T10:00:00Z","region":"us-east-1","detail":{}}}"#,
        record(key, 0)
    );
    let file = format!(
        r#"{{"Records":[{}]}}"#,
        (0..1000)
            .map(|i| record(key, i))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("one EventBridge event", |b| {
        b.iter(|| cloudtrail::parse(black_box(event.as_bytes()), &limits).unwrap())
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("log file of 1000 records", |b| {
        b.iter(|| cloudtrail::parse(black_box(file.as_bytes()), &limits).unwrap())
    });
    g.finish();
}

fn matching(c: &mut Criterion) {
    let account = AccountId::parse("123456789012").unwrap();
    let keys: HashMap<AccessKeyId, usize> = (0..10_000)
        .map(|i| (AccessKeyId::generate_for(account), i))
        .collect();
    let live = keys.keys().next().unwrap().to_string();
    let foreign = "AKIAIOSFODNN7EXAMPLE";
    let mut g = c.benchmark_group("match");
    g.throughput(Throughput::Elements(1));
    for (name, key) in [("live key", live.as_str()), ("unknown key", foreign)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let k = AccessKeyId::parse(black_box(key)).unwrap();
                keys.get(&k).copied().or_else(|| {
                    // A miss costs a query only for a key of our own account.
                    (k.account_id() == account).then_some(usize::MAX)
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse, matching);
criterion_main!(benches);
