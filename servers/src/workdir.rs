//! Where a server keeps its files: a temporary directory removed on drop (tests), or a kept
//! directory (the local stack keeps all its state under one directory).

use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum Workdir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Workdir {
    /// A fresh temporary directory, deleted when dropped.
    pub fn temp(prefix: &str) -> std::io::Result<Self> {
        Ok(Workdir::Temp(
            tempfile::Builder::new().prefix(prefix).tempdir()?,
        ))
    }

    /// `path`, created if needed and kept after drop.
    pub fn kept(path: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(path)?;
        Ok(Workdir::Kept(path.to_path_buf()))
    }

    pub fn path(&self) -> &Path {
        match self {
            Workdir::Temp(t) => t.path(),
            Workdir::Kept(p) => p,
        }
    }
}
