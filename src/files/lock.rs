//! The one advisory-lock helper (`flock` through `std::fs::File::lock`): the kernel releases
//! a lock when its holder dies, so a `kill -9` leaves no stale lock. A lock file is never
//! deleted while it may be locked — a process that opened the old file and one that
//! created a new one at the same path would both hold "the" lock — so lock files stay.

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::Path;

/// A held lock; dropping it (or dying) releases it.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

fn open(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

impl FileLock {
    /// Wait for the exclusive lock of `path` (created with its folder if absent).
    pub fn exclusive(path: &Path) -> io::Result<FileLock> {
        let file = open(path)?;
        file.lock()?;
        Ok(FileLock { _file: file })
    }

    /// The exclusive lock of `path` if free; `None` when another holder has it.
    pub fn try_exclusive(path: &Path) -> io::Result<Option<FileLock>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

/// Whether someone holds the lock of `path` now (reads only: a lock file that does not
/// exist is held by nobody).
pub fn is_held(path: &Path) -> bool {
    match File::open(path) {
        Ok(file) => matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_excludes_until_dropped() {
        let dir = std::env::temp_dir().join(format!("scalebook-lock-{}", std::process::id()));
        let path = dir.join("sub/x.lock");
        let held = FileLock::exclusive(&path).unwrap();
        assert!(is_held(&path));
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        drop(held);
        assert!(!is_held(&path));
        assert!(FileLock::try_exclusive(&path).unwrap().is_some());
        assert!(!is_held(&dir.join("absent.lock")));
        fs::remove_dir_all(dir).unwrap();
    }
}
