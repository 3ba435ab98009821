//! `canarykeys doctor`'s look at `[streams]`: each stream's receiver is resolved and connected
//! to (TLS handshakes included); `--send-test` also sends it a `test`-type record (opt-in: a
//! pager stream pages someone). Lines name hosts, never a token, key or password.

use crate::config::Config;
use crate::notify::stream::{test_record, Streams};
use crate::notify::Outcome;

/// One line per stream to print, and a finding per stream that does not work.
pub async fn check(config: &Config, send_test: bool) -> (Vec<String>, Vec<String>) {
    let (mut lines, mut found) = (Vec::new(), Vec::new());
    let streams = match Streams::from_config(&config.streams) {
        Ok(s) => s,
        Err(e) => return (lines, vec![format!("streams: {e}")]),
    };
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let now = crate::render::rfc3339(crate::clock::SystemClock::shared().now_millis());
    for (kind, sink) in streams.iter() {
        match sink.check().await {
            Ok(said) => lines.push(format!("stream {kind}: {said}")),
            Err(e) => {
                found.push(format!("stream {kind}: {e}"));
                continue;
            }
        }
        if !send_test {
            continue;
        }
        let record = test_record(&public_url, &now);
        let outcome = sink.send(std::slice::from_ref(&record)).await;
        match outcome.first() {
            Some(Outcome::Delivered) => {
                lines.push(format!("stream {kind}: test record {} sent", record.id()))
            }
            Some(Outcome::Retry(e) | Outcome::RetryAfter(e, _) | Outcome::Permanent(e)) => {
                found.push(format!("stream {kind}: the test record was not taken: {e}"))
            }
            None => found.push(format!("stream {kind}: the test record was not sent")),
        }
    }
    (lines, found)
}
