//! The mint service's Lambda entry point: logging, configuration and the IAM client at cold
//! start, then the runtime loop. The logic lives in the library so tests can drive it.

use aws_config::BehaviorVersion;
use canarykeys_mint::{apigw, Config, Mint};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    canarykeys_lambda_common::init_tracing();
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
