//! `surge-exporter` binary: all logic lives in the library so tests drive the same code.

fn main() -> std::process::ExitCode {
    surge_exporter::cli::main()
}
