//! A submitted array as the store keeps it (`STORE/slurm/<id>/`): the job id, which runs
//! each task trains (their specs), how tasks train, their logs. It is how a second `run` — or one
//! after the watcher was killed — attaches to the array instead of submitting again, and
//! how `status` says which runs are pending or running on the cluster.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::atomic::write_atomic;
use crate::record::pretty;
use crate::store::Store;
use crate::study::RunSpec;

/// One run of the submission.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub key: String,
    pub name: String,
}

/// What every task of the array needs, and what the watcher needs to follow it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submission {
    /// Slurm's job id; `None` until `sbatch` answered.
    pub job_id: Option<u64>,
    pub study: String,
    /// The store every task publishes into (absolute).
    pub store: PathBuf,
    /// Threads each task trains with (its CPUs).
    pub threads: usize,
    pub retry_failed: bool,
    pub retrain_corrupt: bool,
    /// Run r's spec is `specs/<r>.json`.
    pub runs: Vec<Run>,
    /// Array task i trains the runs `tasks[i]` (indices into `runs`), one after another.
    pub tasks: Vec<Vec<usize>>,
    /// Every task has ended and its run is accounted for; the folder stays for its logs.
    #[serde(default)]
    pub finished: bool,
}

/// A submission in its folder.
#[derive(Debug, Clone)]
pub struct Saved {
    pub dir: PathBuf,
    pub submission: Submission,
}

pub const FILE: &str = "submission.json";

impl Saved {
    /// A new submission folder with every run's spec.
    pub fn create(
        store: &Store,
        submission: Submission,
        specs: &[&RunSpec],
    ) -> std::io::Result<Saved> {
        let root = store.root().join("slurm");
        std::fs::create_dir_all(&root)?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let dir = root.join(format!("{stamp}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("specs"))?;
        std::fs::create_dir_all(dir.join("logs"))?;
        for (i, spec) in specs.iter().enumerate() {
            write_atomic(&spec_path(&dir, i), pretty(spec).as_bytes())?;
        }
        let saved = Saved { dir, submission };
        saved.save()?;
        Ok(saved)
    }

    pub fn save(&self) -> std::io::Result<()> {
        write_atomic(&self.dir.join(FILE), pretty(&self.submission).as_bytes())
    }

    /// Every unfinished submission the store holds, oldest first (unreadable ones are
    /// skipped).
    pub fn all(store_root: &Path) -> Vec<Saved> {
        let Ok(entries) = std::fs::read_dir(store_root.join("slurm")) else {
            return Vec::new();
        };
        let mut out: Vec<Saved> = entries
            .filter_map(Result::ok)
            .filter_map(|e| Saved::read(&e.path()).ok())
            .filter(|s| !s.submission.finished)
            .collect();
        out.sort_by(|a, b| a.dir.cmp(&b.dir));
        out
    }

    pub fn read(dir: &Path) -> Result<Saved, String> {
        let path = dir.join(FILE);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let submission = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a scalebook submission: {e}", path.display()))?;
        Ok(Saved {
            dir: dir.to_path_buf(),
            submission,
        })
    }

    /// Run `index`'s spec.
    pub fn spec(&self, index: usize) -> Result<RunSpec, String> {
        let path = spec_path(&self.dir, index);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Task `index`'s log (`%A_%a.out`).
    pub fn log(&self, index: usize) -> Option<PathBuf> {
        let job = self.submission.job_id?;
        Some(self.dir.join("logs").join(format!("{job}_{index}.out")))
    }

    /// Forget a submission that never reached Slurm.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Mark the submission finished: its array has ended and every task is accounted for.
    pub fn finish(&mut self) -> std::io::Result<()> {
        self.submission.finished = true;
        self.save()
    }
}

fn spec_path(dir: &Path, index: usize) -> PathBuf {
    dir.join("specs").join(format!("{index}.json"))
}
