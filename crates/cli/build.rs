//! Puts the git revision into `herald --version` (`herald 0.1.0 (a1b2c3d4e5f6)`), so a bug report
//! names the exact source. Outside a git checkout (a crates.io tarball, a container build
//! context without `.git`) the version is the plain package version: the build never fails
//! for want of git.

use std::process::Command;

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    let full = match revision() {
        Some(rev) => format!("{version} ({rev})"),
        None => version,
    };
    println!("cargo:rustc-env=HERALD_VERSION={full}");
    // A new commit or checkout changes HEAD (or the ref it points to): rebuild the string then,
    // not on every build.
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={git_dir}/{head_ref}");
        }
        println!("cargo:rerun-if-changed={git_dir}/packed-refs");
    }
    println!("cargo:rerun-if-env-changed=HERALD_GIT_REVISION");
}

/// The short revision of HEAD, or what `HERALD_GIT_REVISION` says (a packager building from a
/// tarball knows the revision). No `-dirty` mark: the build reruns only when HEAD moves, so a
/// mark computed once would go stale with the next edit.
fn revision() -> Option<String> {
    if let Ok(rev) = std::env::var("HERALD_GIT_REVISION") {
        return (!rev.is_empty()).then_some(rev);
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

/// Runs git and returns its trimmed stdout, or `None` if git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}
