//! The `--files-dir` directory that `local` paths are relative to; refuses paths that escape it.

use std::path::{Component, Path, PathBuf};

#[derive(Clone, Copy)]
pub struct FilesDir<'a>(pub Option<&'a Path>);

impl FilesDir<'_> {
    /// Resolves a local path inside the files directory, or says why it cannot.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, String> {
        let Some(dir) = self.0 else {
            return Err("local file paths are relative to a files directory that must be specified with -d/--files-dir".into());
        };
        let mut depth = 0usize;
        for c in Path::new(rel).components() {
            match c {
                Component::Normal(_) => depth += 1,
                Component::ParentDir if depth == 0 => {
                    return Err(format!(
                        "local file path {rel:?} traverses outside the files directory"
                    ))
                }
                Component::ParentDir => depth -= 1,
                _ => {}
            }
        }
        let full = dir.join(rel.trim_start_matches('/'));
        let (Ok(real), Ok(base)) = (full.canonicalize(), dir.canonicalize()) else {
            return Err(format!(
                "local file {} does not exist (paths are relative to --files-dir {})",
                full.display(),
                dir.display()
            ));
        };
        if !real.starts_with(&base) {
            return Err(format!(
                "local file path {rel:?} traverses outside the files directory (through a symlink)"
            ));
        }
        Ok(full)
    }

    /// Reads a local file.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>, String> {
        let full = self.resolve(rel)?;
        std::fs::read(&full).map_err(|e| format!("reading local file {}: {e}", full.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("out")).unwrap();
        let f = FilesDir(Some(dir.path()));
        assert_eq!(f.read("a").unwrap(), b"x");
        assert_eq!(f.read("./sub/../a").unwrap(), b"x");
        assert!(f.read("../a").unwrap_err().contains("traverses outside"));
        assert!(f.read("out").unwrap_err().contains("traverses outside"));
        assert!(f.read("missing").unwrap_err().contains("does not exist"));
        assert!(FilesDir(None)
            .read("a")
            .unwrap_err()
            .contains("--files-dir"));
    }
}
