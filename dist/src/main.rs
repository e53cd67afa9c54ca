//! `surge-dist DIR`: the man pages and shell completions of `surge` and `surge-exporter`,
//! generated from the same clap definitions the binaries parse with, so a flag added to
//! either shows up in both without anyone retyping it. scripts/package puts them in the
//! Debian packages.
//!
//! `surge-dist --reference DIR` writes the guide's configuration references instead.
//!
//! Writes, for each binary NAME, `DIR/NAME/man/NAME.1` (and one page per subcommand,
//! `surge-replay.1` for `surge replay`) and `DIR/NAME/completions/{bash,zsh,fish}/…` under the
//! names each shell looks for.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

mod reference;
use clap::CommandFactory;
use clap_complete::Shell;

fn main() {
    if let Err(e) = run() {
        eprintln!("surge-dist: {e:#}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let dir = match args.as_slice() {
        [flag, dir] if flag == "--reference" => {
            // The guide's configuration references (docs/src/reference/).
            let dir = PathBuf::from(dir);
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (file, text) in references() {
                let path = dir.join(file);
                fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            }
            return Ok(());
        }
        [dir] => PathBuf::from(dir),
        _ => bail!(
            "usage: surge-dist DIR (man pages and completions into DIR/NAME/) or surge-dist --reference DIR (the configuration references)"
        ),
    };
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

/// The configuration reference pages, by file name under docs/src/reference/: the config
/// file's every key from its schema, then the flags as `--help` gives them.
fn references() -> Vec<(&'static str, String)> {
    let schema = |s: schemars::Schema| serde_json::to_value(s).unwrap_or_default();
    let flags = |mut command: clap::Command| {
        format!(
            "\n## Flags\n\n```text\n{}\n```\n",
            command.render_long_help().to_string().trim_end()
        )
    };
    vec![
        (
            "surge.md",
            reference::page(
                "Configuration: surge",
                "The panel's config file: `--config FILE`, else `$XDG_CONFIG_HOME/surge/config.toml` \
                 when it exists. Flags override it. An unknown key is an error naming it. This page \
                 is generated from the config's code (`surge-dist`); a test keeps it equal.",
                &schema(surge_tui::config::schema()),
            ) + &flags(surge_tui::cli::Cli::command()),
        ),
        (
            "surge-exporter.md",
            reference::page(
                "Configuration: surge-exporter",
                "The exporter's config file: `--config FILE` (the Debian package's unit reads \
                 `/etc/surge-exporter/surge-exporter.toml`). At least one of `[postgres]`, \
                 `[kafka]`, `[kubernetes]` and `[processes]` must be present. Durations take units: \
                 `500ms`, `15s`, `5m`. An unknown key is an error naming it. This page is generated \
                 from the config's code (`surge-dist`); a test keeps it equal.",
                &schema(surge_exporter::config::schema()),
            ) + &flags(surge_exporter::cli::command()),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::reference;

    /// docs/src/reference/ holds the generated pages.
    #[test]
    fn the_configuration_references_are_generated_from_the_code() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src/reference");
        let pages = super::references();
        assert_eq!(pages.len(), 2);
        for (file, generated) in pages {
            let path = dir.join(file);
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == generated,
                "docs/src/reference/{file} is not what the code gives (cargo run -p surge-dist -- --reference docs/src/reference rewrites it)"
            );
        }
    }

    /// Every key says what it is, and has a default or an example.
    #[test]
    fn every_key_is_described_with_a_default_or_an_example() {
        for schema in [
            surge_tui::config::schema(),
            surge_exporter::config::schema(),
        ] {
            let schema = serde_json::to_value(schema).expect("schema as JSON");
            assert_eq!(reference::incomplete(&schema), Vec::<String>::new());
        }
    }

    #[test]
    fn the_checks_catch_an_undescribed_key() {
        let schema = serde_json::json!({
            "properties": {"sec": {"type": "object", "properties": {
                "bare": {"type": "string"},
                "told": {"type": "string", "description": "Told.", "default": "x"},
            }}}
        });
        assert_eq!(
            reference::incomplete(&schema),
            [
                "[sec].bare: no description",
                "[sec].bare: neither default nor example"
            ]
        );
        let page = reference::page("T", "I", &schema);
        assert!(
            page.contains("| `told` | string | `\"x\"` | — | Told. |"),
            "{page}"
        );
    }
}
