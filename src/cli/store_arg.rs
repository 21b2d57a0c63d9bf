//! The `--store` option shared by `run` and `status`: flag, else `SCALEBOOK_STORE`, else
//! `.scalebook/` in the working directory.

use std::path::PathBuf;

use crate::store::DEFAULT_STORE;

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArg {
    /// Run store folder [default: $SCALEBOOK_STORE, else .scalebook]
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
}

impl StoreArg {
    pub fn path(&self) -> PathBuf {
        self.store
            .clone()
            .or_else(|| std::env::var_os("SCALEBOOK_STORE").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE))
    }
}
