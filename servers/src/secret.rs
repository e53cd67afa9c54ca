//! Files that hold secrets (passwords, the JWT key, TLS keys): created owner-only from the
//! first byte (mode 0600, in a 0700 directory), never widened after the fact.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Create `dir` (and its parents) owner-only; an existing one is narrowed to 0700.
pub fn dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Write `contents` to `path`, readable and writable by the owner only.
pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode on open: narrow it before writing.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn secrets_are_owner_only_even_over_a_wider_file() -> std::io::Result<()> {
        let root = tempfile::tempdir()?;
        let secrets = root.path().join("a/secrets");
        dir(&secrets)?;
        assert_eq!(std::fs::metadata(&secrets)?.mode() & 0o777, 0o700);
        let file = secrets.join("key");
        std::fs::write(&file, "old")?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))?;
        write(&file, "new")?;
        assert_eq!(std::fs::metadata(&file)?.mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&file)?, "new");
        Ok(())
    }
}
