//! What a shipped binary needs beside the server: a health check for containers (distroless
//! images have no curl), shell completions and a man page, all from the one clap definition.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use clap::{Args, CommandFactory};

use crate::config::Config;

#[derive(Args, Debug)]
pub struct HealthcheckArgs {
    /// The URL to ask (default: /healthz on the configured `listen` address, a wildcard address
    /// asked on loopback).
    #[arg(long, value_name = "URL")]
    pub url: Option<url::Url>,
    /// How long to wait for the answer.
    #[arg(long, default_value = "5s", value_parser = humantime_serde::re::humantime::parse_duration)]
    pub timeout: Duration,
}

/// The address a local probe reaches a server listening on `listen` at.
fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Asks the server's /healthz; any answer but 200 within the timeout is a failure.
pub async fn healthcheck(args: HealthcheckArgs, config: &Config) -> anyhow::Result<()> {
    let url = match args.url {
        Some(url) => url,
        None => url::Url::parse(&format!("http://{}/healthz", probe_address(config.listen)))?,
    };
    let client = reqwest::Client::builder()
        .timeout(args.timeout)
        .no_proxy()
        .build()?;
    let resp = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: no answer ({e})"))?;
    let status = resp.status();
    if status != reqwest::StatusCode::OK {
        anyhow::bail!("{url}: answered {status}");
    }
    println!("ok: {url} answered {status}");
    Ok(())
}

/// Prints the completion script for `shell` to standard output.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(shell, &mut cmd, "canarykeys", &mut std::io::stdout());
    Ok(())
}

/// Prints the man page (roff) to standard output: `canarykeys man > canarykeys.1`.
pub fn man_page() -> anyhow::Result<()> {
    let cmd = super::Cli::command();
    clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listen_address_is_probed_on_loopback() {
        let probe = |s: &str| probe_address(s.parse().unwrap()).to_string();
        assert_eq!(probe("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(probe("[::]:8080"), "[::1]:8080");
        assert_eq!(probe("10.1.2.3:80"), "10.1.2.3:80");
    }

    #[test]
    fn the_man_page_names_every_command() {
        let mut out = Vec::new();
        clap_mangen::Man::new(super::super::Cli::command())
            .render(&mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        for name in ["serve", "plant", "doctor", "completions", "healthcheck"] {
            assert!(text.contains(name), "{name} missing from the man page");
        }
    }
}
