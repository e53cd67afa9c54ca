//! For a binary's `build.rs`: the git commit it is built from, as `SURGE_GIT_COMMIT`
//! (`env!("SURGE_GIT_COMMIT")` in the binary), so `--version` says which code it runs.
//!
//! The commit is `SURGE_GIT_COMMIT` from the environment when set (a package build outside
//! the repository), else `git rev-parse` of the checkout, else `unknown`. The build reruns
//! when HEAD moves.

use std::path::Path;
use std::process::Command;

/// Emit `cargo:` lines setting `SURGE_GIT_COMMIT` for the crate being built.
pub fn emit_commit() {
    println!("cargo:rerun-if-env-changed=SURGE_GIT_COMMIT");
    let commit = std::env::var("SURGE_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(from_git);
    println!("cargo:rustc-env=SURGE_GIT_COMMIT={commit}");
}

/// The commit checked out at `dir` as `--version` names it, `unknown` without git (for the
/// binaries' tests, which compare it with what they were built from).
pub fn checkout_commit(dir: &Path) -> String {
    git_in(Some(dir), &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
}

fn git(args: &[&str]) -> Option<String> {
    git_in(None, args)
}

fn git_in(dir: Option<&Path>, args: &[&str]) -> Option<String> {
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let out = command.args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn from_git() -> String {
    let commit = checkout_commit(Path::new("."));
    if commit == "unknown" {
        return commit;
    }
    // Rebuild when HEAD moves: HEAD itself, the branch it names, packed refs.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!(
            "cargo:rerun-if-changed={}",
            Path::new(&dir).join("HEAD").display()
        );
    }
    if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
        let common = Path::new(&common);
        println!(
            "cargo:rerun-if-changed={}",
            common.join("packed-refs").display()
        );
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", common.join(branch).display());
        }
    }
    commit
}
