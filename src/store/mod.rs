//! The content-addressed run store.
//!
//! ```text
//! STORE/runs/<name>-<key12>/{spec.json, result.json, curve.jsonl}   finished entries (immutable)
//! STORE/runs/.partial-<name>-<key12>-<pid>/                         a run in progress
//! STORE/locks/<name>-<key12>.lock                                    one advisory lock per entry
//! STORE/trunks/<trunk>/step-<n>.snap                                 shared WSD trunks in progress
//! STORE/studies/<study>/{runs,curves}.parquet                        collected results
//! ```
//!
//! A run trains into its own partial folder and is published by renaming that folder to the
//! entry name, so an entry is either complete or absent, whatever is killed when. The lock is
//! an OS advisory lock (`flock`), released by the kernel when its holder dies: two processes
//! on one store never train the same key, and a `kill -9` leaves no stale lock behind.
//! Unreadable entries are reported and retrained, never fatal (DVC's run-cache rule).

pub mod atomic;
pub mod collect;
pub mod import;

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use crate::record::RunStatus;
use crate::record::read::{Entry, read_entry};
use crate::study::RunSpec;

/// Default store folder, relative to the working directory.
pub const DEFAULT_STORE: &str = ".scalebook";

/// What the store holds for one run.
#[derive(Debug)]
pub enum EntryState {
    /// No entry (or a diverged record judged by an older divergence rule).
    Missing,
    /// Finished with status ok.
    Done(Box<Entry>),
    /// Recorded as diverged or failed (retried only when asked).
    Failed(Box<Entry>),
    /// Present but unreadable or incomplete; the reason says what is wrong.
    Corrupt(String),
}

/// A held entry lock; dropping it (or dying) releases it.
#[derive(Debug)]
pub struct EntryLock {
    _file: File,
}

/// A run store rooted at a folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open (and create) a store, checking that it is writable.
    pub fn open(root: &Path) -> io::Result<Store> {
        for sub in ["runs", "locks", "studies"] {
            fs::create_dir_all(root.join(sub))?;
        }
        let probe = root
            .join("locks")
            .join(format!(".probe-{}", std::process::id()));
        atomic::write_atomic(&probe, b"ok")?;
        fs::remove_file(&probe)?;
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// A store that already exists, for reading only: nothing is created or written.
    pub fn existing(root: &Path) -> io::Result<Store> {
        if !root.join("runs").is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "not a run store (no runs/ folder)",
            ));
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// For a store kept in version control (a study's published results): a `.gitignore`
    /// that leaves out locks, runs in progress, the calibration cache, tokenizers and the
    /// Parquet tables (all re-derived), so only records and `fits.json` are committed.
    pub fn ignore_derived_files(&self) -> io::Result<()> {
        const IGNORE: &str = "# Written by scalebook: only run records and fits.json are results.\n\
                              locks/\ncalibration/\nslurm/\ntrunks/\nruns/.partial-*\nruns/*/tokenizer.json\n\
                              studies/*/*.parquet\n";
        let path = self.root.join(".gitignore");
        if fs::read_to_string(&path).ok().as_deref() != Some(IGNORE) {
            atomic::write_atomic(&path, IGNORE.as_bytes())?;
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Snapshots of shared WSD trunks (working state, never results).
    pub fn trunks_dir(&self) -> PathBuf {
        self.root.join("trunks")
    }

    /// The finished entry's folder.
    pub fn entry_dir(&self, spec: &RunSpec) -> PathBuf {
        self.root.join("runs").join(spec.dir_name())
    }

    /// Folder for collected results of a study.
    pub fn study_dir(&self, study: &str) -> PathBuf {
        self.root.join("studies").join(study)
    }

    /// What the store holds for `spec`, read by the one record reader ([`read_entry`]).
    pub fn inspect(&self, spec: &RunSpec) -> EntryState {
        let entry = match read_entry(&self.entry_dir(spec), &spec.key) {
            Ok(Some(entry)) => entry,
            Ok(None) => return EntryState::Missing,
            Err(why) => return EntryState::Corrupt(why),
        };
        match entry.result.status {
            RunStatus::Ok => EntryState::Done(Box::new(entry)),
            // Stopped by the rule before spikes were told from divergences: train it again.
            RunStatus::Diverged
                if entry.result.divergence_rule.unwrap_or(1) < crate::record::DIVERGENCE_RULE =>
            {
                EntryState::Missing
            }
            RunStatus::Diverged | RunStatus::Failed => EntryState::Failed(Box::new(entry)),
        }
    }

    /// Every finished entry in the store, by folder name, read by the one reader (the key
    /// taken from the folder's own `result.json`; a folder whose name does not match its
    /// record's is corrupt).
    pub fn entries(&self) -> Vec<(String, Result<Entry, String>)> {
        let mut out = Vec::new();
        let Ok(dirs) = fs::read_dir(self.root.join("runs")) else {
            return out;
        };
        for dir in dirs.flatten() {
            let name = dir.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !dir.path().is_dir() {
                continue;
            }
            let key = fs::read_to_string(dir.path().join("result.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v.get("key").and_then(|k| k.as_str()).map(str::to_string))
                .unwrap_or_default();
            let entry = read_entry(&dir.path(), &key).and_then(|e| {
                let e = e.ok_or_else(|| "vanished while read".to_string())?;
                if e.result.spec.dir_name() == name {
                    Ok(e)
                } else {
                    Err("the folder's name is not its record's".to_string())
                }
            });
            out.push((name, entry));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn lock_path(&self, spec: &RunSpec) -> PathBuf {
        self.root
            .join("locks")
            .join(format!("{}.lock", spec.dir_name()))
    }

    fn lock_file(&self, spec: &RunSpec) -> io::Result<File> {
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_path(spec))
    }

    /// Take the entry's lock if free; `None` when another process holds it.
    pub fn try_lock(&self, spec: &RunSpec) -> io::Result<Option<EntryLock>> {
        let file = self.lock_file(spec)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(EntryLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// Wait for the entry's lock.
    pub fn lock(&self, spec: &RunSpec) -> io::Result<EntryLock> {
        let file = self.lock_file(spec)?;
        file.lock()?;
        Ok(EntryLock { _file: file })
    }

    /// Wait for a store-wide lock named `name` (`locks/<name>.lock`), e.g. around a
    /// submission to a cluster.
    pub fn lock_named(&self, name: &str) -> io::Result<EntryLock> {
        fs::create_dir_all(self.root.join("locks"))?;
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("locks").join(format!("{name}.lock")))?;
        file.lock()?;
        Ok(EntryLock { _file: file })
    }

    /// Whether another process is training `spec` right now (reads only: a lock file that
    /// does not exist is held by nobody).
    pub fn is_running(&self, spec: &RunSpec) -> bool {
        match File::open(self.lock_path(spec)) {
            Ok(file) => match file.try_lock_shared() {
                Ok(()) => false,
                Err(TryLockError::WouldBlock) => true,
                Err(TryLockError::Error(_)) => false,
            },
            Err(_) => false,
        }
    }

    /// A fresh partial folder for training `spec`; clears partial folders that earlier,
    /// killed processes left (the caller holds the lock, so none of them is live).
    pub fn start_partial(&self, spec: &RunSpec, _lock: &EntryLock) -> io::Result<PathBuf> {
        let prefix = format!(".partial-{}-", spec.dir_name());
        for entry in fs::read_dir(self.root.join("runs"))? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                fs::remove_dir_all(entry.path())?;
            }
        }
        let dir = self
            .root
            .join("runs")
            .join(format!("{prefix}{}", std::process::id()));
        fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Publish a finished partial folder as the entry, replacing a corrupt or failed one.
    pub fn commit(&self, spec: &RunSpec, partial: &Path, _lock: &EntryLock) -> io::Result<()> {
        let dir = self.entry_dir(spec);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::rename(partial, &dir)?;
        File::open(self.root.join("runs"))?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::{from_bytes, plan::plan};

    fn spec() -> RunSpec {
        let text = "version: 1\nname: s\nmodel: { context: 8, sizes: [{ layers: 1, d_model: 8, heads: 2 }] }\ntokens: [64]\ntrain: { batch: 4, eval_tokens: 8 }\n";
        let study = from_bytes(text.as_bytes(), Path::new("s.yaml")).unwrap();
        plan(&study).unwrap().remove(0)
    }

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "scalebook-store-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn locks_exclude_and_release() {
        let root = temp();
        let store = Store::open(&root).unwrap();
        let s = spec();
        let held = store.try_lock(&s).unwrap().expect("free lock");
        assert!(
            store.try_lock(&s).unwrap().is_none(),
            "second lock must fail"
        );
        assert!(store.is_running(&s));
        drop(held);
        assert!(store.try_lock(&s).unwrap().is_some());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn entries_are_missing_then_corrupt_until_complete() {
        let root = temp();
        let store = Store::open(&root).unwrap();
        let s = spec();
        assert!(matches!(store.inspect(&s), EntryState::Missing));
        let lock = store.lock(&s).unwrap();
        let partial = store.start_partial(&s, &lock).unwrap();
        fs::write(partial.join("result.json"), "{ truncated").unwrap();
        store.commit(&s, &partial, &lock).unwrap();
        match store.inspect(&s) {
            EntryState::Corrupt(why) => assert!(why.contains("not a run record"), "{why}"),
            other => panic!("{other:?}"),
        }
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn an_unwritable_store_is_an_error() {
        let err = Store::open(Path::new("/proc/scalebook-cannot-write-here")).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::Other
            ) || err.raw_os_error().is_some()
        );
    }
}
