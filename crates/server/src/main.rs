//! The `canarykeys` binary: parse the command line, run it, report failure with a non-zero exit.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = canarykeys_server::cli::Cli::parse();
    match canarykeys_server::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
