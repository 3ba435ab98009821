//! The mint service's Lambda entry point: logging, configuration and the IAM client at cold
//! start, then the runtime loop. The logic lives in the library so tests can drive it.

use aws_config::BehaviorVersion;
use canarykeys_mint::{apigw, Config, Mint};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    // A bad setting stops the cold start with a message naming the variable, instead of failing
    // each request later.
    let config = Config::from_env()
        .inspect_err(|e| tracing::error!(error = %e, "mint service cannot start"))?;
    // The function's role, through the SDK's default chain; IAM is global, so the region only
    // picks the partition.
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let mint = Mint::new(aws_sdk_iam::Client::new(&sdk), config);
    tracing::info!(user_path = %mint.config().user_path, "mint service ready");
    let mint = &mint;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        apigw::handler(mint, event).await
    }))
    .await
}

/// Plain or JSON lines without ANSI colours (CloudWatch shows escape codes verbatim). Lambda's
/// advanced logging controls choose: `AWS_LAMBDA_LOG_FORMAT=JSON` and `AWS_LAMBDA_LOG_LEVEL`,
/// else `RUST_LOG`, else `info`.
fn init_tracing() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into())
        .to_lowercase()
        // Lambda's levels include FATAL, which tracing does not have.
        .replace("fatal", "error");
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
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
