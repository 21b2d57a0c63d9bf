//! The `--store` option shared by the commands that read or write runs: the flag, else the
//! study's own `store:` (its published results), else `SCALEBOOK_STORE`, else `.scalebook/`
//! in the working directory.

use std::path::PathBuf;

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
    /// The store for `study`, and whether it is the study's own (published) store.
    pub fn locate(&self, study: &Study) -> (PathBuf, bool) {
        match (&self.store, &study.store) {
            (Some(path), own) => (path.clone(), own.as_ref() == Some(path)),
            (None, Some(own)) => (own.clone(), true),
            (None, None) => (
                std::env::var_os("SCALEBOOK_STORE")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE)),
                false,
            ),
        }
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
