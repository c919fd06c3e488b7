//! Stamps the binary with the git commit it was built from (`ICSYNC_GIT_COMMIT`, shown by
//! `icsync --version`). Builds outside a git checkout (a crate tarball, no git installed) get
//! "unknown": the build never fails and never touches the network for this.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Re-run when HEAD moves: HEAD itself (a checkout) and the branch it points at (a commit).
/// Only existing files are named, since a missing one would make cargo re-run every build.
fn watch_head() {
    let mut files = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        files.push(git(&["rev-parse", "--git-path", &branch]));
    }
    files.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for file in files.into_iter().flatten() {
        if Path::new(&file).exists() {
            println!("cargo:rerun-if-changed={file}");
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    watch_head();
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=ICSYNC_GIT_COMMIT={commit}");
}
