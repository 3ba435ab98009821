//! Stamps the binary with the git commit it was built from, for `canarykeys --version`.
//!
//! Order: `CANARYKEYS_COMMIT` from the environment (a packager's, or a container build without
//! `.git`), else `git rev-parse`, else "unknown" (a source tarball).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=CANARYKEYS_COMMIT");
    let commit = std::env::var("CANARYKEYS_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| {
            // Rebuild when HEAD moves: HEAD itself (a checkout) and the ref it names (a commit).
            if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
                println!("cargo:rerun-if-changed={dir}/HEAD");
                if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
                    let common = git(&["rev-parse", "--git-common-dir"]).unwrap_or(dir);
                    println!("cargo:rerun-if-changed={common}/{head_ref}");
                    println!("cargo:rerun-if-changed={common}/packed-refs");
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CANARYKEYS_COMMIT={commit}");
}
