//! The identity of a token source inside a run key: the synthetic language's parameters, or
//! a content hash of the files (so moving or renaming a corpus does not retrain, and editing
//! one byte does).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DataSpec, TokenDtype, Tokenizer};

/// Version of the synthetic language generator; bump when its output changes.
pub const SYNTHETIC_GENERATOR: &str = "zipf-markov/1";

/// What about the data changes a run's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum DataIdentity {
    Synthetic {
        generator: String,
        vocab: u64,
        order: u64,
        zipf: f64,
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
    /// Compute the identity; reads and hashes data files.
    pub fn identity(&self) -> Result<DataIdentity, DataReadError> {
        Ok(match self {
            DataSpec::Synthetic(s) => DataIdentity::Synthetic {
                generator: SYNTHETIC_GENERATOR.to_string(),
                vocab: s.vocab,
                order: s.order,
                zipf: s.zipf,
            },
            DataSpec::Text(t) => DataIdentity::Text {
                content_sha256: hash_files(&t.files)?,
                tokenizer: t.tokenizer,
                val_fraction: t.val_fraction,
            },
            DataSpec::Tokens(t) => DataIdentity::Tokens {
                content_sha256: hash_files(std::slice::from_ref(&t.path))?,
                dtype: t.dtype,
                vocab: t.vocab,
                val_fraction: t.val_fraction,
            },
        })
    }
}

/// sha256 of the concatenated contents of `files`, hex.
pub fn hash_files(files: &[PathBuf]) -> Result<String, DataReadError> {
    let mut hasher = Sha256::new();
    for path in files {
        hash_into(path, &mut hasher).map_err(|source| DataReadError {
            path: path.clone(),
            source,
        })?;
    }
    Ok(hex(&hasher.finalize()))
}

fn hash_into(path: &Path, hasher: &mut Sha256) -> io::Result<()> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
