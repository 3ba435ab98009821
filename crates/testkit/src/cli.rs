//! The `canarykeys` binary run as a script would run it: in a directory, with only the settings
//! the test gives (nothing leaks in from the environment running the tests).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `canarykeys` binary cargo built for this test run. Integration tests live in
/// `target/<profile>/deps/`; cargo puts the package's binaries one level up.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the test binary sits in deps/");
    let dir = deps.parent().expect("deps/ sits in the profile directory");
    let bin = dir.join(format!("canarykeys{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "no canarykeys binary at {}", bin.display());
    bin
}

/// A `canarykeys` command in `dir` with no `CANARYKEYS_*` setting from the environment.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(binary());
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("CANARYKEYS_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs `canarykeys <args>` in `dir` with `env`, and collects its output.
pub fn run<K, V>(dir: &Path, args: &[&str], env: &[(K, V)]) -> Output
where
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
    let mut cmd = command(dir);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("canarykeys runs")
}

/// The standard output of a run that must succeed.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The standard error of a run that must fail.
pub fn fails(out: Output) -> String {
    assert!(
        !out.status.success(),
        "should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("UTF-8 output")
}

/// Standard output and error of a run, for assertion messages and for runs that may go either
/// way.
pub fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
