//! `plant` run as root for another user (the fleet flow: an MDM or configuration management
//! with HOME set to the user's home): the user's files are written as the user, the state goes
//! to root's own place, and a `~/.aws` that points into a root-only directory gets nothing.
//! These tests create users with `useradd`; run as anyone but root they say so and pass.

mod plant_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command as StdCommand;

use plant_support::*;

/// Whether this process is root (the owner of /proc/self is the effective uid).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// A user made for one test, with a home under `parent`; deleted again on drop.
struct User {
    name: String,
    uid: u32,
    home: std::path::PathBuf,
}

impl User {
    fn new(parent: &Path, tag: &str) -> Self {
        let name = format!("pl{tag}{}", std::process::id() % 100_000);
        let home = parent.join(&name);
        // Left over from a run that was killed.
        let _ = StdCommand::new("userdel").arg(&name).status();
        let made = StdCommand::new("useradd")
            .args(["--create-home", "--home-dir"])
            .arg(&home)
            .args(["--shell", "/bin/sh", &name])
            .status()
            .expect("useradd runs");
        assert!(made.success(), "useradd {name}");
        let uid = std::fs::metadata(&home).unwrap().uid();
        assert_ne!(uid, 0);
        Self { name, uid, home }
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = StdCommand::new("userdel").arg(&self.name).status();
    }
}

/// A directory the users' homes can sit in (the test's temp dirs are root's, mode 0700).
fn homes() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

const ROOT_STATE: &str = "/var/lib/sessions/state.json";

#[tokio::test]
async fn plant_as_root_leaves_everything_in_home_the_users_and_the_state_roots() {
    if !is_root() {
        eprintln!("SKIPPED plant_as_root_leaves_everything_in_home_the_users_and_the_state_roots: needs root (useradd)");
        return;
    }
    let f = fleet().await;
    let dir = homes();
    let user = User::new(dir.path(), "a");
    let h = &user.home;
    assert!(!h.join(".aws").exists());
    ok(&run(plant(&f, h, Some(&f.writer), &[])).await);
    for path in [".aws", ".aws/credentials", ".aws/config"] {
        let meta = std::fs::metadata(h.join(path)).unwrap();
        assert_eq!(meta.uid(), user.uid, "{path}");
    }
    for path in walk(h) {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.uid(), user.uid, "{} is not the user's", path.display());
    }
    assert!(
        !h.join(".local/state/sessions").exists(),
        "no state in the user's home"
    );
    let state = Path::new(ROOT_STATE);
    let meta = std::fs::metadata(state).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600));
    let meta = std::fs::metadata(state.parent().unwrap()).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o700));
    let text = std::fs::read_to_string(state).unwrap();
    assert!(text.contains(&h.join(".aws/credentials").display().to_string()));
    assert!(!text.contains("manage_secret"));

    // The user reads and writes them (as `aws configure` would).
    for file in [".aws/credentials", ".aws/config"] {
        let path = h.join(file);
        let can = StdCommand::new("runuser")
            .args(["-u", &user.name, "--", "test", "-r"])
            .arg(&path)
            .args(["-a", "-w"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(can.success(), "{file}");
    }

    ok(&run(plant(&f, h, Some(&f.writer), &["--remove"])).await);
    assert!(!h.join(".aws").exists());
    assert_eq!(token_count(&f.app).await, 0);
    f.app.stop().await;
}

#[tokio::test]
async fn a_symlinked_aws_dir_into_a_root_only_place_gets_nothing() {
    if !is_root() {
        eprintln!(
            "SKIPPED a_symlinked_aws_dir_into_a_root_only_place_gets_nothing: needs root (useradd)"
        );
        return;
    }
    let f = fleet().await;
    let dir = homes();
    let user = User::new(dir.path(), "b");
    let h = &user.home;
    let secret_place = tempfile::tempdir().unwrap();
    std::fs::set_permissions(secret_place.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(secret_place.path(), h.join(".aws")).unwrap();
    let err = fails(&run(plant(&f, h, Some(&f.writer), &[])).await);
    assert!(
        err.contains(".aws/credentials") && err.contains("Permission denied"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(secret_place.path()).unwrap().count(), 0);
    assert_eq!(token_count(&f.app).await, 0);

    // Nor does a credentials file linked into it.
    std::fs::remove_file(h.join(".aws")).unwrap();
    std::fs::create_dir(h.join(".aws")).unwrap();
    std::os::unix::fs::chown(h.join(".aws"), Some(user.uid), None).unwrap();
    let target = secret_place.path().join("credentials");
    std::fs::write(
        &target,
        "[root]\naws_access_key_id = AKIAROOTROOTROOTROOT\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&target, h.join(".aws/credentials")).unwrap();
    let err = fails(&run(plant(&f, h, Some(&f.writer), &[])).await);
    assert!(err.contains("Permission denied"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "[root]\naws_access_key_id = AKIAROOTROOTROOTROOT\n"
    );
    assert!(std::fs::symlink_metadata(h.join(".aws/credentials"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(token_count(&f.app).await, 0);
    f.app.stop().await;
}
