//! What the canarykeys Lambdas (`lambdas/relay`, `lambdas/mint`) share: one log setup, so both
//! functions read Lambda's logging controls the same way.

use tracing_subscriber::EnvFilter;

/// Plain or JSON lines without ANSI colours (CloudWatch shows escape codes verbatim). Lambda's
/// advanced logging controls choose: `AWS_LAMBDA_LOG_FORMAT=JSON` and `AWS_LAMBDA_LOG_LEVEL`,
/// else `RUST_LOG`, else `info`.
pub fn init_tracing() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let filter =
        EnvFilter::try_new(filter_directive(&level)).unwrap_or_else(|_| EnvFilter::new("info"));
    // Lambda stamps every line with its own time.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .without_time()
        .with_target(false);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Lambda's level names as a tracing filter: lower case, and FATAL (which tracing lacks) as
/// `error`.
fn filter_directive(level: &str) -> String {
    level.to_lowercase().replace("fatal", "error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_levels_become_tracing_filters() {
        assert_eq!(filter_directive("FATAL"), "error");
        assert_eq!(filter_directive("DEBUG"), "debug");
        assert_eq!(
            filter_directive("info,canarykeys=TRACE"),
            "info,canarykeys=trace"
        );
    }
}
