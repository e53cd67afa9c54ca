//! The git commit this binary is built from, for `--version`.

fn main() {
    surge_build_info::emit_commit();
}
