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

pub mod collect;
pub mod import;
mod join;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::files::atomic;
use crate::files::lock::{self, FileLock};
use crate::record::RunStatus;
use crate::record::read::{Entry, read_entry};
use crate::study::RunSpec;

/// The first line of a published store's `.gitignore`, which marks it published.
const PUBLISHED_MARK: &str = "# Written by scalebook: only run records and fits.json are results.";

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
pub type EntryLock = FileLock;

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
        const DERIVED: &str = "locks/\ncalibration/\nslurm/\ntrunks/\nruns/.partial-*\n\
                               runs/*/tokenizer.json\nstudies/*/*.parquet\n";
        let ignore = format!("{PUBLISHED_MARK}\n{DERIVED}");
        let path = self.root.join(".gitignore");
        if fs::read_to_string(&path).ok().as_deref() != Some(ignore.as_str()) {
            atomic::write_atomic(&path, ignore.as_bytes())?;
        }
        Ok(())
    }

    /// Whether the folder at `root` is a published store: one whose `.gitignore` scalebook
    /// wrote for a study's own store (it travels with the results into version control).
    pub fn is_marked_published(root: &Path) -> bool {
        fs::read_to_string(root.join(".gitignore"))
            .is_ok_and(|text| text.starts_with(PUBLISHED_MARK))
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

    /// Take the entry's lock if free; `None` when another process holds it.
    pub fn try_lock(&self, spec: &RunSpec) -> io::Result<Option<EntryLock>> {
        FileLock::try_exclusive(&self.lock_path(spec))
    }

    /// Wait for the entry's lock.
    pub fn lock(&self, spec: &RunSpec) -> io::Result<EntryLock> {
        FileLock::exclusive(&self.lock_path(spec))
    }

    /// Wait for a store-wide lock named `name` (`locks/<name>.lock`), e.g. around a
    /// submission to a cluster.
    pub fn lock_named(&self, name: &str) -> io::Result<EntryLock> {
        FileLock::exclusive(&self.root.join("locks").join(format!("{name}.lock")))
    }

    /// Whether another process is training `spec` right now.
    pub fn is_running(&self, spec: &RunSpec) -> bool {
        lock::is_held(&self.lock_path(spec))
    }

    /// Remove partial folders that killed processes left behind for any run (of this plan or
    /// an old one): each whose entry lock nobody holds. Returns how many it removed.
    pub fn clean_stale_partials(&self) -> usize {
        let Ok(dir) = fs::read_dir(self.root.join("runs")) else {
            return 0;
        };
        let mut removed = 0;
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(".partial-") else {
                continue;
            };
            // `<run>-<key12>-<pid>`: the entry's folder name is all but the pid.
            let Some((entry_name, _pid)) = rest.rsplit_once('-') else {
                continue;
            };
            let lock = self.root.join("locks").join(format!("{entry_name}.lock"));
            if let Ok(Some(_held)) = FileLock::try_exclusive(&lock)
                && fs::remove_dir_all(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        removed
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
    /// The replacement is one atomic exchange of the two folders (Linux `renameat2`), so a
    /// kill at any moment leaves the old entry or the new one, never neither.
    pub fn commit(&self, spec: &RunSpec, partial: &Path, _lock: &EntryLock) -> io::Result<()> {
        let dir = self.entry_dir(spec);
        if dir.exists() {
            exchange(partial, &dir)?;
            // `partial` now holds the old entry.
            fs::remove_dir_all(partial)?;
        } else {
            fs::rename(partial, &dir)?;
        }
        File::open(self.root.join("runs"))?.sync_all()
    }
}

/// Swap two paths atomically.
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let (ca, cb) = (crate::files::c_path(a)?, crate::files::c_path(b)?);
    // SAFETY: two valid NUL-terminated paths relative to the working directory.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
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
        // Under a file: no folder can be made there (whoever runs the test, root included).
        let root = temp();
        fs::create_dir_all(&root).unwrap();
        let file = root.join("a-file");
        fs::write(&file, "x").unwrap();
        let err = Store::open(&file.join("store")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR), "{err}");
        // In /proc, where no folder can be created.
        let err = Store::open(Path::new("/proc/scalebook-cannot-write-here")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn stale_partials_of_any_key_are_cleaned_unless_in_use() {
        let root = temp();
        let store = Store::open(&root).unwrap();
        let s = spec();
        // One left by a killed process for a key no plan has any more, one in use.
        let stale = root.join("runs/.partial-l9-d9-t99-0123456789ab-4242");
        fs::create_dir_all(&stale).unwrap();
        let lock = store.lock(&s).unwrap();
        let live = store.start_partial(&s, &lock).unwrap();
        assert_eq!(store.clean_stale_partials(), 1);
        assert!(!stale.exists());
        assert!(live.exists(), "a partial whose run is training was removed");
        drop(lock);
        assert_eq!(store.clean_stale_partials(), 1);
        assert!(!live.exists());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn committing_over_a_failed_entry_replaces_it_whole() {
        let root = temp();
        let store = Store::open(&root).unwrap();
        let s = spec();
        let lock = store.lock(&s).unwrap();
        let first = store.start_partial(&s, &lock).unwrap();
        fs::write(first.join("result.json"), "old").unwrap();
        store.commit(&s, &first, &lock).unwrap();
        let second = store.start_partial(&s, &lock).unwrap();
        fs::write(second.join("result.json"), "new").unwrap();
        store.commit(&s, &second, &lock).unwrap();
        assert_eq!(
            fs::read_to_string(store.entry_dir(&s).join("result.json")).unwrap(),
            "new"
        );
        // Neither the partial folder nor the old entry is left behind.
        let names: Vec<String> = fs::read_dir(root.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![s.dir_name()]);
        fs::remove_dir_all(root).unwrap();
    }
}
