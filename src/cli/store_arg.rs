//! The `--store` option shared by the commands that read or write runs: the flag, else the
//! study's own `store:` (its published results), else `SCALEBOOK_STORE`, else `.scalebook/`
//! in the working directory.

use std::path::{Path, PathBuf};

use super::{Failure, exit};
use crate::store::{DEFAULT_STORE, Store};
use crate::study::Study;

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArg {
    /// Run store folder [default: the study's `store:`, else $SCALEBOOK_STORE, else .scalebook]
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
}

impl StoreArg {
    /// The store for `study`, and whether it holds published results: the study's own
    /// store however it is spelled (the same folder once symlinks, `.` and `..` are
    /// resolved), or any store marked published on disk (its scalebook `.gitignore`).
    pub fn locate(&self, study: &Study) -> (PathBuf, bool) {
        let path = match (&self.store, &study.store) {
            (Some(path), _) => path.clone(),
            (None, Some(own)) => return (own.clone(), true),
            (None, None) => std::env::var_os("SCALEBOOK_STORE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE)),
        };
        let own = study
            .store
            .as_ref()
            .is_some_and(|own| same_folder(own, &path));
        let published = own || Store::is_marked_published(&path);
        (path, published)
    }

    pub fn path(&self, study: &Study) -> PathBuf {
        self.locate(study).0
    }

    /// Open (and create) the store for `study`; a study's own store gets a `.gitignore` that
    /// keeps everything but its records and `fits.json` out of version control.
    pub fn open(&self, study: &Study) -> Result<Store, Failure> {
        let (path, published) = self.locate(study);
        let store = Store::open(&path).map_err(|e| {
            Failure::new(
                exit::INTERNAL,
                format!("{}: cannot use the run store: {e}", path.display()),
            )
        })?;
        if published {
            store
                .ignore_derived_files()
                .map_err(|e| Failure::new(exit::INTERNAL, format!("{}: {e}", path.display())))?;
        }
        Ok(store)
    }
}

/// Whether two spellings name one folder (both must exist: a folder that does not exist
/// holds no records to protect).
fn same_folder(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
