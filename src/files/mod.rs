//! File utilities every stage shares: crash-safe writes ([`atomic`]), advisory locks
//! ([`lock`]), the folder a file's relative paths are read against ([`folder_of`]), and a
//! path as a system call takes it ([`c_path`]).

pub mod atomic;
pub mod lock;

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The folder `file` lies in: `.` for a bare file name (whose `parent()` is the empty path).
pub fn folder_of(file: &Path) -> &Path {
    file.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// `path` for a system call that takes a C string.
pub fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path holds a NUL byte"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_file_name_lies_in_the_working_directory() {
        assert_eq!(folder_of(Path::new("study.yaml")), Path::new("."));
        assert_eq!(folder_of(Path::new("a/study.yaml")), Path::new("a"));
        assert_eq!(folder_of(Path::new("/study.yaml")), Path::new("/"));
    }
}
