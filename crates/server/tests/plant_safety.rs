//! What an intruder on a planted machine finds, and what it does not let him do: no string
//! `plant` leaves on disk changes the token; an older state's manage secret is retired on the
//! next run; removing and rotating need the planting key from the environment; runs at the same
//! time leave one profile and no orphan token; a symlinked credentials file stays a link; a file
//! another program writes during the plant is planned again.

mod plant_support;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use canarykeys_plant::{self as plant, Disk};
use canarykeys_server::cli::{Cli, Command as CliCommand};
use canarykeys_testkit::access::services;
use clap::Parser;
use plant_support::*;
use serde_json::{json, Value};

/// Every run of letters, digits and the characters keys and secrets are made of, in `bytes`.
fn strings_in(bytes: &[u8], into: &mut BTreeSet<String>) {
    let text = String::from_utf8_lossy(bytes);
    let keep = |c: char| c.is_ascii_alphanumeric() || "_-+/=.:~".contains(c);
    for word in text.split(|c: char| !keep(c)) {
        for part in [word, word.trim_matches(|c: char| "=:.".contains(c))] {
            if !part.is_empty() {
                into.insert(part.to_owned());
            }
        }
        // `key=value` and `key:value` halves too.
        for half in word.split(['=', ':']) {
            if !half.is_empty() {
                into.insert(half.to_owned());
            }
        }
    }
}

#[tokio::test]
async fn no_string_plant_leaves_on_disk_changes_the_token() {
    let f = fleet().await;
    let home = lived_in_home();
    let h = home.path();
    ok(&run(plant(&f, h, Some(&f.writer), &[])).await);
    ok(&run(plant(&f, h, Some(&f.writer), &["--context", "env"])).await);
    let state: Value = serde_json::from_slice(&std::fs::read(state_path(h)).unwrap()).unwrap();
    let ids: Vec<String> = state["plants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["token_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    let mut strings = BTreeSet::new();
    for path in walk(h) {
        if path.is_file() {
            strings_in(&std::fs::read(&path).unwrap(), &mut strings);
        }
    }
    assert!(
        !strings.iter().any(|s| s.contains(&f.writer)),
        "the planting key stays in the environment"
    );
    assert!(!std::fs::read_to_string(state_path(h))
        .unwrap()
        .contains("manage_secret"));
    assert!(strings.len() > 20, "{strings:?}");
    for id in &ids {
        for s in &strings {
            for (what, status) in try_bearer(&f.app, id, s).await {
                assert!(
                    !(200..300).contains(&status),
                    "{what} with {s:?} from the disk answered {status}"
                );
            }
        }
        let token = services(&f.app).await.tokens.get(id).await.unwrap();
        assert!(token.email_enabled, "the token still alerts");
    }
    f.app.stop().await;
}

#[tokio::test]
async fn an_old_state_file_loses_its_manage_secret_on_the_next_run() {
    let f = fleet().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // A token planted by an older version, which kept its manage secret in its state.
    let created: Value = f
        .app
        .http
        .post(f.app.url("/api/v1/tokens"))
        .bearer_auth(&f.writer)
        .json(&json!({"memo": "laptop-7:stdout (ana)", "email": "soc@corp.internal"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let secret = created["manage_secret"].as_str().unwrap();
    let old = h.join(".local/state/canarykeys/plant.json");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    let legacy = json!({"plants": [{
        "target": {"kind": "stdout", "path": null},
        "profile": "deploy",
        "server": f.app.address,
        "token_id": id,
        "manage_secret": secret,
        "memo": "laptop-7:stdout (ana)",
        "planted_at": "2026-01-01T00:00:00Z",
        "expires_at": null,
        "aws": created["aws"],
        "files": [],
    }]});
    std::fs::write(&old, serde_json::to_vec_pretty(&legacy).unwrap()).unwrap();
    let before = f
        .app
        .get_authed(&format!("/api/v1/tokens/{id}"), secret)
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), 200);

    // Any run, even one without the planting key, retires it; the state moves to the default
    // place (root's own when the tests run as root).
    let listed = ok(&run(plant_default(&f, h, None, &["--list"])).await);
    assert!(listed.contains(id), "{listed}");
    for (what, status) in try_bearer(&f.app, id, secret).await {
        assert!(
            [401, 404].contains(&status),
            "{what} with the old secret answered {status}"
        );
    }
    assert!(!old.exists() && !old.parent().unwrap().exists());
    let state = default_state(h);
    let now = std::fs::read_to_string(&state).unwrap();
    assert!(
        !now.contains(secret) && !now.contains("manage_secret"),
        "{now}"
    );
    assert!(plant_of(&state, id).is_some());
    let token = services(&f.app).await.tokens.get(id).await.unwrap();
    assert!(token.email_enabled);

    // The key prints as before, and --remove takes the planting key.
    let again = ok(&run(plant_default(&f, h, Some(&f.writer), &["--stdout", "json"])).await);
    assert!(again.contains(created["aws"]["access_key_id"].as_str().unwrap()));
    let remove = plant_default(&f, h, Some(&f.writer), &["--stdout", "json", "--remove"]);
    ok(&run(remove).await);
    assert!(plant_of(&state, id).is_none());
    assert_eq!(token_count(&f.app).await, 0);
    f.app.stop().await;
}

#[tokio::test]
async fn remove_and_rotate_need_the_planting_key() {
    let f = fleet().await;
    let home = lived_in_home();
    let h = home.path();
    ok(&run(plant(&f, h, Some(&f.writer), &[])).await);
    let creds = std::fs::read(h.join(".aws/credentials")).unwrap();
    let state = std::fs::read(state_path(h)).unwrap();
    for args in [&["--remove"][..], &["--rotate"]] {
        let err = fails(&run(plant(&f, h, None, args)).await);
        assert!(err.contains("CANARYKEYS_API_KEY"), "{args:?}: {err}");
        let err = fails(&run(plant(&f, h, Some(&f.reader), args)).await);
        assert!(err.contains("tokens:write"), "{args:?}: {err}");
        assert_eq!(std::fs::read(h.join(".aws/credentials")).unwrap(), creds);
        assert_eq!(std::fs::read(state_path(h)).unwrap(), state);
    }
    assert_eq!(token_count(&f.app).await, 1);
    let first = the_plant(&state_path(h))["token_id"].clone();
    ok(&run(plant(&f, h, Some(&f.writer), &["--rotate"])).await);
    let second = the_plant(&state_path(h))["token_id"].clone();
    assert_ne!(first, second);
    assert_eq!(token_count(&f.app).await, 1, "the old token is deleted");
    ok(&run(plant(&f, h, Some(&f.writer), &["--remove"])).await);
    assert_eq!(
        std::fs::read_to_string(h.join(".aws/credentials")).unwrap(),
        CREDENTIALS
    );
    assert_eq!(token_count(&f.app).await, 0);
    f.app.stop().await;
}

#[tokio::test]
async fn concurrent_plants_leave_one_profile_and_no_orphan_token() {
    let f = fleet().await;
    let home = lived_in_home();
    let h = home.path();
    let runs: Vec<_> = (0..4)
        .map(|_| run(plant(&f, h, Some(&f.writer), &[])))
        .collect();
    let outs = futures_util::future::join_all(runs).await;
    let said: Vec<String> = outs.iter().map(ok).collect();
    assert_eq!(
        said.iter().filter(|s| s.starts_with("planted")).count(),
        1,
        "{said:?}"
    );
    let creds = std::fs::read_to_string(h.join(".aws/credentials")).unwrap();
    assert_eq!(creds.matches("aws_access_key_id").count(), 2, "{creds}");
    assert_eq!(token_count(&f.app).await, 1);
    the_plant(&state_path(h));
    f.app.stop().await;
}

#[tokio::test]
async fn a_symlinked_credentials_file_is_written_through_and_stays_a_link() {
    let f = fleet().await;
    let home = lived_in_home();
    let h = home.path();
    std::fs::create_dir(h.join("dotfiles")).unwrap();
    std::fs::rename(
        h.join(".aws/credentials"),
        h.join("dotfiles/aws-credentials"),
    )
    .unwrap();
    std::os::unix::fs::symlink("../dotfiles/aws-credentials", h.join(".aws/credentials")).unwrap();
    ok(&run(plant(&f, h, Some(&f.writer), &["--profile", "backup"])).await);
    let link = std::fs::symlink_metadata(h.join(".aws/credentials")).unwrap();
    assert!(link.file_type().is_symlink());
    let target = std::fs::read_to_string(h.join("dotfiles/aws-credentials")).unwrap();
    assert!(
        target.starts_with(CREDENTIALS) && target.contains("[backup]"),
        "{target}"
    );
    ok(&run(plant(&f, h, Some(&f.writer), &["--remove"])).await);
    assert!(std::fs::symlink_metadata(h.join(".aws/credentials"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(h.join("dotfiles/aws-credentials")).unwrap(),
        CREDENTIALS
    );

    // A link to nothing is refused before a token exists.
    std::fs::remove_file(h.join(".aws/credentials")).unwrap();
    std::os::unix::fs::symlink("../nowhere/credentials", h.join(".aws/credentials")).unwrap();
    let err = fails(&run(plant(&f, h, Some(&f.writer), &[])).await);
    assert!(err.contains("symbolic link"), "{err}");
    assert!(!h.join("nowhere").exists());
    assert_eq!(token_count(&f.app).await, 0);
    f.app.stop().await;
}

/// A disk on which another program appends to `victim` just as plant writes its first file.
struct Meddler {
    victim: std::path::PathBuf,
    times: std::sync::atomic::AtomicUsize,
}

impl Disk for Meddler {
    fn write_all(&self, file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
        let sc = std::sync::atomic::Ordering::SeqCst;
        if self
            .times
            .fetch_update(sc, sc, |n| n.checked_sub(1))
            .is_ok()
        {
            let mut v = File::options().append(true).open(&self.victim)?;
            v.write_all(b"\n[helper]\naws_access_key_id = AKIAHELPERHELPERHELP\n")?;
        }
        file.write_all(bytes)
    }
}

async fn plant_meddled(f: &plant_support::Fleet, h: &Path, times: usize) -> Result<(), String> {
    let creds = h.join(".aws/credentials");
    let config = h.join(".aws/config");
    let state = h.join("state.json");
    let args = [
        "canarykeys",
        "plant",
        "--server",
        &f.app.address,
        "--api-key",
        &f.writer,
        "--file",
        creds.to_str().unwrap(),
        "--aws-config",
        config.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--email",
        "soc@corp.internal",
    ];
    let CliCommand::Plant(args) = Cli::try_parse_from(args).unwrap().command else {
        unreachable!()
    };
    let disk = Meddler {
        victim: creds,
        times: times.into(),
    };
    plant::run_with(*args, &disk, &mut Vec::new())
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_file_changed_while_planting_is_planned_again_or_left_alone() {
    let f = fleet().await;
    let home = lived_in_home();
    let h = home.path();
    // Changed once: planned again from the new bytes, and the other program's lines stay.
    plant_meddled(&f, h, 1).await.unwrap();
    let creds = std::fs::read_to_string(h.join(".aws/credentials")).unwrap();
    assert!(creds.contains("[helper]"), "{creds}");
    assert_eq!(creds.matches("aws_access_key_id").count(), 3, "{creds}");
    assert_eq!(token_count(&f.app).await, 1);

    // Changed on every try: an error, the files as the other program left them, no new token.
    let home = lived_in_home();
    let h = home.path();
    let err = plant_meddled(&f, h, 10).await.unwrap_err();
    assert!(
        err.contains("changed by another program") && err.contains("deleted on the server"),
        "{err}"
    );
    let creds = std::fs::read_to_string(h.join(".aws/credentials")).unwrap();
    assert_eq!(creds.matches("[helper]").count(), 2, "{creds}");
    assert_eq!(creds.matches("aws_access_key_id").count(), 3, "{creds}");
    assert!(!h.join("state.json").exists());
    assert_eq!(token_count(&f.app).await, 1, "only the first home's token");
    f.app.stop().await;
}

#[tokio::test]
async fn an_old_secret_is_dropped_from_disk_even_when_the_server_is_away() {
    let f = fleet().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let state = state_path(h);
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    let legacy = json!({"plants": [{
        "target": {"kind": "stdout", "path": null},
        "profile": "deploy",
        "server": "http://127.0.0.1:9",
        "token_id": "vwfsu62chtbgnhwzm63lwnalfm",
        "manage_secret": "an-old-manage-secret-from-before-this-version",
        "memo": "laptop-7:stdout (ana)",
        "planted_at": "2026-01-01T00:00:00Z",
        "expires_at": null,
        "aws": {"access_key_id": "AKIAIOSFODNN7EXAMPLQ", "secret_access_key": "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEYQ", "region": "us-east-1", "output": "json"},
        "files": [],
    }]});
    std::fs::write(&state, serde_json::to_vec(&legacy).unwrap()).unwrap();
    // A state given with --state (here through the environment) is read where it is.
    let out = run(plant(&f, h, None, &["--list"])).await;
    ok(&out);
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(
        warned.contains("could not replace it") && warned.contains("reset-manage-secrets --all"),
        "{warned}"
    );
    let now = std::fs::read_to_string(&state).unwrap();
    assert!(
        !now.contains("an-old-manage-secret") && now.contains("vwfsu62chtbgnhwzm63lwnalfm"),
        "{now}"
    );
    f.app.stop().await;
}
