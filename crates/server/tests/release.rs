//! What ships with the binary: `--version` names the commit, the bash completion loads in a
//! real bash, the man page renders, and `healthcheck` passes against a running server and fails
//! (non-zero, with a message) against none.

use std::process::Command;

use canarykeys_testkit::spawn_app;

fn canarykeys(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_canarykeys"))
        .args(args)
        .env_remove("CANARYKEYS_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = canarykeys(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let commit = text
        .trim()
        .strip_prefix(concat!(
            "canarykeys ",
            env!("CARGO_PKG_VERSION"),
            " (commit "
        ))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected --version: {text}"));
    // A build from a checkout names the commit; only a tarball build says "unknown".
    let from_git =
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.git")).exists();
    if from_git && std::env::var_os("CANARYKEYS_COMMIT").is_none() {
        assert_eq!(commit.len(), 12, "{commit}");
        assert!(commit.chars().all(|c| c.is_ascii_hexdigit()), "{commit}");
    } else {
        assert!(!commit.is_empty());
    }
}

#[test]
fn the_bash_completion_loads_in_bash() {
    let out = canarykeys(&["completions", "bash"]);
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("canarykeys.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let bash = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p canarykeys",
            script.display()
        ))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&bash.stdout);
    assert!(
        bash.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&bash.stderr)
    );
    assert!(said.contains("canarykeys"), "{said}");
    assert!(said.starts_with("complete "), "{said}");
    for shell in ["zsh", "fish"] {
        let out = canarykeys(&["completions", shell]);
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    let bad = canarykeys(&["completions", "tcsh"]);
    assert!(!bad.status.success());
}

#[test]
fn the_man_page_renders_as_roff() {
    let out = canarykeys(&["man"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(".ie") || text.contains(".TH canarykeys"),
        "{}",
        &text[..200.min(text.len())]
    );
}

#[tokio::test]
async fn healthcheck_passes_against_a_server_and_fails_against_none() {
    let app = spawn_app().await;
    let url = app.url("/healthz");
    let ok = tokio::task::spawn_blocking(move || canarykeys(&["healthcheck", "--url", &url]))
        .await
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    app.stop().await;

    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let down = tokio::task::spawn_blocking(move || {
        canarykeys(&["healthcheck", "--url", &url, "--timeout", "2s"])
    })
    .await
    .unwrap();
    assert!(!down.status.success());
    let said = String::from_utf8_lossy(&down.stderr);
    assert!(said.contains("no answer"), "{said}");
}
