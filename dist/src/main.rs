//! `surge-dist DIR`: the man pages and shell completions of `surge` and `surge-exporter`,
//! generated from the same clap definitions the binaries parse with, so a flag added to
//! either shows up in both without anyone retyping it. scripts/package puts them in the
//! Debian packages.
//!
//! Writes, for each binary NAME, `DIR/NAME/man/NAME.1` (and one page per subcommand,
//! `surge-replay.1` for `surge replay`) and `DIR/NAME/completions/{bash,zsh,fish}/…` under the
//! names each shell looks for.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use clap_complete::Shell;

fn main() {
    if let Err(e) = run() {
        eprintln!("surge-dist: {e:#}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        bail!("usage: surge-dist DIR (writes DIR/NAME/man and DIR/NAME/completions per binary)");
    };
    let dir = PathBuf::from(dir);
    for command in [
        surge_tui::cli::Cli::command(),
        surge_exporter::cli::command(),
    ] {
        let out = dir.join(command.get_name());
        write_man_pages(&command, &out.join("man"))?;
        write_completions(command, &out.join("completions"))?;
    }
    Ok(())
}

/// One page for the command and one per subcommand (`surge-replay.1`), as git and cargo do.
fn write_man_pages(command: &clap::Command, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(command.clone(), dir).with_context(|| {
        format!(
            "writing man pages of {} to {}",
            command.get_name(),
            dir.display()
        )
    })
}

/// Completions where each shell's package layout expects them: bash-completion's
/// `completions/NAME`, zsh's `_NAME`, fish's `NAME.fish`.
fn write_completions(mut command: clap::Command, dir: &Path) -> Result<()> {
    let name = command.get_name().to_owned();
    for (shell, file) in [
        (Shell::Bash, name.clone()),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let shell_dir = dir.join(shell.to_string());
        fs::create_dir_all(&shell_dir)
            .with_context(|| format!("creating {}", shell_dir.display()))?;
        let path = shell_dir.join(file);
        let mut out =
            fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?;
        clap_complete::generate(shell, &mut command, &name, &mut out);
    }
    Ok(())
}
