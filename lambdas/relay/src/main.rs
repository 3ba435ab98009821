//! The relay's Lambda entry point: logging, configuration at cold start, then the runtime loop.
//! The logic lives in the library so tests can drive it without a Lambda.

use canarykeys_relay::{handler, Relay};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    canarykeys_lambda_common::init_tracing();
    // A bad setting stops the cold start with a message naming the variable, instead of failing
    // each invocation later.
    let relay =
        Relay::from_env().inspect_err(|e| tracing::error!(error = %e, "relay cannot start"))?;
    tracing::info!(server = %relay.config().server_url, max_attempts = relay.config().retry.max_attempts, "relay ready");
    let relay = &relay;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        handler(relay, event).await
    }))
    .await
}
