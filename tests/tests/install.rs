//! `cargo install --locked --path` installs both shipped binaries from the repository, with
//! the lockfile as committed. Built with `--debug` into the suite's own target directory (the
//! same code, without a second release build on the suite's clock).

use std::path::Path;
use std::process::Command;

#[test]
fn cargo_install_locked_installs_both_binaries() -> anyhow::Result<()> {
    let repo = surge_tests::alerting::repo();
    let root = tempfile::tempdir()?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo.join("target"));
    for (package, binary) in [("tui", "surge"), ("exporter", "surge-exporter")] {
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["install", "--locked", "--offline", "--debug", "--path"])
            .arg(repo.join(package))
            .arg("--root")
            .arg(root.path())
            .arg("--target-dir")
            .arg(&target)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "cargo install {package}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let installed = root.path().join("bin").join(binary);
        anyhow::ensure!(
            installed.exists(),
            "cargo install {package} did not install {binary}"
        );
        let version = Command::new(&installed).arg("--version").output()?;
        assert!(version.status.success(), "{}", installed.display());
        let text = String::from_utf8_lossy(&version.stdout);
        assert!(
            text.starts_with(&format!("{binary} {} (commit ", env!("CARGO_PKG_VERSION"))),
            "{text}"
        );
    }
    assert!(!Path::new(&root.path().join("bin/surge-shop")).exists());
    Ok(())
}

/// `cargo package` packs both binaries' crates with the library crates they need, in one run
/// (cargo resolves each against the ones packed before it): what `cargo publish` would upload,
/// with no warning. Not verified by building the packages: that resolves the library crates
/// from crates.io, where they are not published, and it would build kafka-protocol without
/// the workspace's patch (vendor/kafka-protocol/SURGE-PATCH.md).
#[test]
fn cargo_package_packs_both_binaries_without_warnings() -> anyhow::Result<()> {
    let repo = surge_tests::alerting::repo();
    let target = tempfile::tempdir()?;
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&repo)
        .args(["package", "--offline", "--no-verify", "--allow-dirty"])
        .args([
            "-p",
            "surge-build-info",
            "-p",
            "surge-metrics",
            "-p",
            "surge-client",
        ])
        .args(["-p", "surge-tui", "-p", "surge-exporter", "--target-dir"])
        .arg(target.path())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(out.status.success(), "cargo package: {stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    for crate_file in ["surge-tui-0.1.0.crate", "surge-exporter-0.1.0.crate"] {
        let packed = target.path().join("package").join(crate_file);
        assert!(packed.exists(), "{} missing: {stderr}", packed.display());
    }
    Ok(())
}
