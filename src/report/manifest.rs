//! The reproducibility appendix: what produced this chapter's numbers — the study file's
//! hash, the producer (trainer version) of the runs and the fitting code's version, the
//! machines the runs trained on, seeds, data identity and every store key.
//!
//! It describes the results, never the renderer: no build commit, toolchain or path typed,
//! so that a later scalebook with the same trainer and fit versions re-derives the same
//! bytes from the same records (what lets CI compare a committed chapter with a fresh
//! render, and `scalebook verify` re-render one).

use std::collections::BTreeSet;
use std::path::{Component, Path};

use serde::Serialize;

use crate::record::RunResult;

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
    /// Distinct producers of the runs (`scalebook-gpt/3`, `mock/…`).
    pub producers: Vec<String>,
    /// The fitting code's version that computed the fits (0 when unrecorded).
    pub fit_version: u32,
    /// Distinct `CPU × threads` the runs trained on (with the device an external trainer
    /// named).
    pub machines: Vec<String>,
    /// Distinct instruction-set paths of the engine's runs.
    pub isa_paths: Vec<String>,
    pub seed: u64,
    /// The data identity every run's key includes (JSON).
    pub data_identity: Option<String>,
    /// The first producer (for templates written before there could be several).
    pub trainer: Option<String>,
    pub store_keys: Vec<StoreKey>,
    /// Commands that re-run the study and rebuild this report.
    pub commands: Vec<String>,
}

/// The study file as seen from the project the book belongs to (the book folder's parent):
/// the same text whatever folder the command ran in or how the path was typed; a study
/// outside that project by its file name.
fn display_path(path: &Path, book: &Path) -> String {
    let project = book
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let rel = match (std::fs::canonicalize(path), std::fs::canonicalize(project)) {
        (Ok(file), Ok(project)) => file.strip_prefix(&project).ok().map(Path::to_path_buf),
        _ => None,
    }
    .unwrap_or_else(|| path.file_name().map(Into::into).unwrap_or_default());
    rel.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

impl Manifest {
    /// The manifest for a study whose runs have these records, fitted by `fit_version`, for
    /// the book in `book`.
    pub fn new(
        study: &crate::study::Study,
        records: &[&RunResult],
        fit_version: u32,
        book: &Path,
    ) -> Manifest {
        let machines: BTreeSet<String> = records
            .iter()
            .map(|r| match &r.device {
                Some(device) => format!("{} × {} thread(s), device {device}", r.cpu, r.threads),
                None => format!("{} × {} thread(s)", r.cpu, r.threads),
            })
            .collect();
        let isa_paths: BTreeSet<String> = records.iter().filter_map(|r| r.isa.clone()).collect();
        let producers: BTreeSet<String> = records
            .iter()
            .map(|r| r.spec.identity.trainer.clone())
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
        let file = display_path(&study.path, book);
        Manifest {
            study_file: file.clone(),
            study_sha256: study.sha256.clone(),
            producers: producers.into_iter().collect(),
            fit_version,
            machines: machines.into_iter().collect(),
            isa_paths: isa_paths.into_iter().collect(),
            seed: study.seed,
            data_identity: records
                .first()
                .and_then(|r| serde_json::to_string(&r.data).ok()),
            trainer: records.first().map(|r| r.spec.identity.trainer.clone()),
            store_keys,
            commands: vec![
                format!("scalebook run {file}"),
                format!("scalebook verify {file}"),
            ],
        }
    }
}
