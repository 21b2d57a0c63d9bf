//! The reproducibility appendix: everything a reviewer needs to re-run the study and get the
//! same numbers — study file hash, tool version and commit, toolchain and dependency
//! versions, the machines the runs trained on, seeds, data identity and every store key.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::record::RunResult;

/// The crate's build facts (captured by build.rs).
pub const GIT_COMMIT: &str = env!("SCALEBOOK_GIT_COMMIT");
pub const RUSTC: &str = env!("SCALEBOOK_RUSTC");
pub const CARGO_LOCK_SHA256: &str = env!("SCALEBOOK_CARGO_LOCK_SHA256");
const DEP_VERSIONS: &str = env!("SCALEBOOK_DEP_VERSIONS");

/// One stored run: its name and content key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct StoreKey {
    pub name: String,
    pub key: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub study_file: String,
    pub study_sha256: String,
    pub tool_version: String,
    pub git_commit: String,
    pub rustc: String,
    pub cargo_lock_sha256: String,
    /// `crate=version` of the crates that shape numbers and output.
    pub dependencies: Vec<String>,
    /// Distinct `CPU × threads` the runs trained on.
    pub machines: Vec<String>,
    pub seed: u64,
    /// The data identity every run's key includes (JSON).
    pub data_identity: Option<String>,
    pub trainer: Option<String>,
    pub store_keys: Vec<StoreKey>,
    /// Commands that re-run the study and rebuild this report.
    pub commands: Vec<String>,
}

impl Manifest {
    /// The manifest for a study whose runs have these records.
    pub fn new(study: &crate::study::Study, records: &[&RunResult], book: &str) -> Manifest {
        let machines: BTreeSet<String> = records
            .iter()
            .map(|r| format!("{} × {} thread(s)", r.cpu, r.threads))
            .collect();
        let mut store_keys: Vec<StoreKey> = records
            .iter()
            .map(|r| StoreKey {
                name: r.name.clone(),
                key: r.key.clone(),
            })
            .collect();
        store_keys.sort();
        store_keys.dedup();
        let file = study.path.display().to_string();
        let book_flag = if book == "book" {
            String::new()
        } else {
            format!(" --book {book}")
        };
        Manifest {
            study_file: file.clone(),
            study_sha256: study.sha256.clone(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: GIT_COMMIT.to_string(),
            rustc: RUSTC.to_string(),
            cargo_lock_sha256: CARGO_LOCK_SHA256.to_string(),
            dependencies: DEP_VERSIONS
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            machines: machines.into_iter().collect(),
            seed: study.seed,
            data_identity: records
                .first()
                .and_then(|r| serde_json::to_string(&r.data).ok()),
            trainer: records.first().map(|r| r.spec.identity.trainer.clone()),
            store_keys,
            commands: vec![
                format!("git checkout {GIT_COMMIT}"),
                "cargo build --release".to_string(),
                format!("target/release/scalebook run {file}{book_flag}"),
                format!("target/release/scalebook report {file}{book_flag}"),
            ],
        }
    }
}
