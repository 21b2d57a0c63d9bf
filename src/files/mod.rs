//! File utilities every stage shares: crash-safe writes ([`atomic`]), advisory locks
//! ([`lock`]), and the folder a file's relative paths are read against ([`folder_of`]).

pub mod atomic;
pub mod lock;

use std::path::Path;

/// The folder `file` lies in: `.` for a bare file name (whose `parent()` is the empty path).
pub fn folder_of(file: &Path) -> &Path {
    file.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
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
