//! The identity of a token source inside a run key: the synthetic language's parameters, or
//! a content hash of the files (so moving or renaming a corpus does not retrain, and editing
//! one byte does).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DataSpec, TokenDtype, Tokenizer};

/// Version of the synthetic language generator; bump when its output changes.
pub const SYNTHETIC_GENERATOR: &str = "zipf-markov/1";
/// Version of the facts generator ([`super::facts`]).
pub const FACTS_GENERATOR: &str = "zipf-facts/1";

/// What about the data changes a run's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum DataIdentity {
    Synthetic {
        generator: String,
        vocab: u64,
        order: u64,
        zipf: f64,
        /// The facts language's fact count (absent for the Markov mixture).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        facts: Option<u64>,
    },
    Text {
        /// sha256 over the files' contents, in order.
        content_sha256: String,
        tokenizer: Tokenizer,
        val_fraction: f64,
    },
    Tokens {
        content_sha256: String,
        dtype: TokenDtype,
        vocab: u64,
        val_fraction: f64,
    },
}

/// A file the identity needed could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot read data file: {source}", path.display())]
pub struct DataReadError {
    pub path: PathBuf,
    pub source: io::Error,
}

impl DataSpec {
    /// Compute the identity; reads and hashes data files (a file whose digest is cached for
    /// its exact metadata is not read again: see [`HashCache`]).
    pub fn identity(&self) -> Result<DataIdentity, DataReadError> {
        self.identity_with(Hashing::Cached)
    }

    /// The identity from the files' bytes as they are now, whatever the cache says: the
    /// guard before a run trains. It reads every data file once more: about 1.1 s per GB of
    /// corpus per run on the 2-core machine (`scalebook plan` of a text study over a 1 GB
    /// corpus took 1.15 s with an empty hash cache, 0.02 s with it filled).
    pub fn identity_of_bytes(&self) -> Result<DataIdentity, DataReadError> {
        self.identity_with(Hashing::Fresh)
    }

    fn identity_with(&self, how: Hashing) -> Result<DataIdentity, DataReadError> {
        Ok(match self {
            DataSpec::Synthetic(s) => DataIdentity::Synthetic {
                generator: if s.facts.is_some() {
                    FACTS_GENERATOR
                } else {
                    SYNTHETIC_GENERATOR
                }
                .to_string(),
                vocab: s.vocab,
                order: s.order,
                zipf: s.zipf,
                facts: s.facts,
            },
            DataSpec::Text(t) => DataIdentity::Text {
                content_sha256: hash_files_with(&t.files, how)?,
                tokenizer: t.tokenizer,
                val_fraction: t.val_fraction,
            },
            DataSpec::Tokens(t) => DataIdentity::Tokens {
                content_sha256: hash_files_with(std::slice::from_ref(&t.path), how)?,
                dtype: t.dtype,
                vocab: t.vocab,
                val_fraction: t.val_fraction,
            },
        })
    }
}

/// Content hash of `files`, hex: one file's own sha256 (what `sha256sum` prints), or for
/// several files the sha256 of their digests, one per line, in order.
pub fn hash_files(files: &[PathBuf]) -> Result<String, DataReadError> {
    hash_files_with(files, Hashing::Cached)
}

/// Whether a cached digest may stand for a file's bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Hashing {
    Cached,
    Fresh,
}

fn hash_files_with(files: &[PathBuf], how: Hashing) -> Result<String, DataReadError> {
    let mut cache = HashCache::load();
    let mut digests = Vec::with_capacity(files.len());
    for path in files {
        let digest = cache.hash(path, how).map_err(|source| DataReadError {
            path: path.clone(),
            source,
        })?;
        digests.push(digest);
    }
    cache.save();
    Ok(match digests.as_slice() {
        [one] => one.clone(),
        many => hex(&Sha256::digest(many.join("\n").as_bytes())),
    })
}

fn hash_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// File digests remembered by (path, device, inode, size, modification time, inode change
/// time), so planning a study over a large corpus does not re-read it every time. The change
/// time (`ctime`) is what makes it safe: any write or metadata change sets it to the
/// present, and no tool can set it back — so an edit whose modification time was restored
/// (`cp -p`, `rsync -a`, `tar x`, `touch -r`) still misses the cache. The guard before
/// training reads the bytes regardless ([`DataSpec::identity_of_bytes`]). Kept in
/// `$SCALEBOOK_CACHE` (default `$XDG_CACHE_HOME/scalebook`, else `~/.cache/scalebook`) as
/// `content-hashes.json`. It is a cache: unreadable or unwritable means rehashing, never an
/// error.
struct HashCache {
    path: Option<PathBuf>,
    entries: BTreeMap<String, CachedDigest>,
    dirty: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CachedDigest {
    size: u64,
    mtime_ns: u128,
    #[serde(default)]
    ctime_ns: i128,
    #[serde(default)]
    inode: (u64, u64),
    sha256: String,
}

pub(crate) fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SCALEBOOK_CACHE") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("scalebook"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/scalebook"))
}

impl HashCache {
    fn load() -> Self {
        let path = cache_dir().map(|d| d.join("content-hashes.json"));
        let entries = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        HashCache {
            path,
            entries,
            dirty: false,
        }
    }

    fn hash(&mut self, path: &Path, how: Hashing) -> io::Result<String> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path)?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let ctime_ns = meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128;
        let inode = (meta.dev(), meta.ino());
        let key = std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string();
        if let Some(hit) = self.entries.get(&key)
            && how == Hashing::Cached
            && hit.size == meta.len()
            && hit.mtime_ns == mtime_ns
            && hit.ctime_ns == ctime_ns
            && hit.inode == inode
            && mtime_ns != 0
        {
            return Ok(hit.sha256.clone());
        }
        let sha256 = hash_file(path)?;
        self.entries.insert(
            key,
            CachedDigest {
                size: meta.len(),
                mtime_ns,
                ctime_ns,
                inode,
                sha256: sha256.clone(),
            },
        );
        self.dirty = true;
        Ok(sha256)
    }

    fn save(&self) {
        let Some(path) = &self.path else { return };
        if !self.dirty {
            return;
        }
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(json) = serde_json::to_string(&self.entries) {
            let _ = crate::files::atomic::write_atomic(path, json.as_bytes());
        }
    }
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder `scalebook-<name>-<pid>` holding `corpus.txt` ("one"), and an empty cache
    /// kept in memory only.
    fn corpus(name: &str) -> (PathBuf, PathBuf, HashCache) {
        let dir = std::env::temp_dir().join(format!("scalebook-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("corpus.txt");
        std::fs::write(&file, "one").unwrap();
        let cache = HashCache {
            path: None,
            entries: BTreeMap::new(),
            dirty: false,
        };
        (dir, file, cache)
    }

    #[test]
    fn cached_digests_follow_size_and_mtime() {
        let (dir, file, mut cache) = corpus("hc");
        let first = cache.hash(&file, Hashing::Cached).unwrap();
        assert!(cache.dirty);
        // A planted wrong digest with the same metadata is believed: proof of a hit.
        let key = std::fs::canonicalize(&file).unwrap().display().to_string();
        cache.entries.get_mut(&key).unwrap().sha256 = "planted".into();
        assert_eq!(cache.hash(&file, Hashing::Cached).unwrap(), "planted");
        // The guard before training never takes the cache's word.
        assert_eq!(cache.hash(&file, Hashing::Fresh).unwrap(), first);
        cache.entries.get_mut(&key).unwrap().sha256 = "planted".into();
        // An edit changes the size (and mtime): rehashed.
        std::fs::write(&file, "two!").unwrap();
        let second = cache.hash(&file, Hashing::Cached).unwrap();
        assert_ne!(second, first);
        assert_ne!(second, "planted");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// `cp -p`, `rsync -a` and `tar x` restore a file's modification time after an edit of
    /// the same size: its change time still moves, so the cache misses.
    #[test]
    fn an_edit_with_its_mtime_restored_is_seen() {
        let (dir, file, mut cache) = corpus("hc-mtime");
        let first = cache.hash(&file, Hashing::Cached).unwrap();
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        // The change time has a clock tick of its own; make sure it can move.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file, "two").unwrap();
        File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), mtime);
        let second = cache.hash(&file, Hashing::Cached).unwrap();
        assert_ne!(
            second, first,
            "a same-size edit with its mtime restored was missed"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn content_hash_ignores_location_and_sees_edits() {
        let dir = std::env::temp_dir().join(format!("scalebook-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.txt");
        let b = dir.join("b.txt");
        std::fs::write(&a, "hello").unwrap();
        std::fs::write(&b, "hello").unwrap();
        assert_eq!(
            hash_files(std::slice::from_ref(&a)).unwrap(),
            hash_files(std::slice::from_ref(&b)).unwrap()
        );
        std::fs::write(&b, "hellO").unwrap();
        assert_ne!(
            hash_files(std::slice::from_ref(&a)).unwrap(),
            hash_files(&[b]).unwrap()
        );
        // sha256("hello")
        assert_eq!(
            hash_files(&[a]).unwrap(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let missing = hash_files(&[dir.join("nope")]).unwrap_err();
        assert!(missing.to_string().contains("nope"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
