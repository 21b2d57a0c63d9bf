//! Token sources: the built-in synthetic language ([`synthetic`]), UTF-8 text files (bytes
//! or a locally trained [`bpe`]) and pre-tokenized token files. [`DataSpec`] describes a
//! validated source, [`DataIdentity`] is its part of a run key, and [`source`] opens it for
//! training.

pub mod bpe;
mod bpe_cache;
pub mod cloze;
pub mod facts;
pub mod identity;
pub mod source;
pub mod synthetic;

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use identity::DataIdentity;

/// Width of the ids in a token file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenDtype {
    U16,
    U32,
}

impl TokenDtype {
    /// Largest vocabulary the width can address.
    pub fn max_vocab(self) -> u64 {
        match self {
            TokenDtype::U16 => 1 << 16,
            TokenDtype::U32 => 1 << 32,
        }
    }
}

/// How text becomes tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Tokenizer {
    /// One token per byte.
    Bytes,
    /// Byte-pair encoding trained on the training split.
    Bpe { vocab: u64 },
}

/// The built-in synthetic language: a mixture of Markov orders 1..=`order` over a
/// Zipf-shaped vocabulary, every next-token distribution derived from a seeded hash — or,
/// with `facts`, the facts language ([`facts`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SyntheticSpec {
    pub vocab: u64,
    pub order: u64,
    pub zipf: f64,
    /// The facts language ([`facts`]) with this many facts, instead of the Markov mixture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<u64>,
}

/// UTF-8 text files, resolved from the study's patterns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextSpec {
    /// Files in the order they are concatenated (patterns in order, matches sorted).
    pub files: Vec<PathBuf>,
    pub tokenizer: Tokenizer,
    pub val_fraction: f64,
}

/// A pre-tokenized file of little-endian ids (nanoGPT's `.bin`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokensSpec {
    pub path: PathBuf,
    pub dtype: TokenDtype,
    pub vocab: u64,
    pub val_fraction: f64,
}

/// A validated token source. File paths are absolute, so a run spec trains from any folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum DataSpec {
    Synthetic(SyntheticSpec),
    Text(TextSpec),
    Tokens(TokensSpec),
}

impl DataSpec {
    /// Vocabulary size the model is built with.
    pub fn vocab(&self) -> u64 {
        match self {
            DataSpec::Synthetic(s) => s.vocab,
            DataSpec::Text(t) => match t.tokenizer {
                Tokenizer::Bytes => 256,
                Tokenizer::Bpe { vocab } => vocab,
            },
            DataSpec::Tokens(t) => t.vocab,
        }
    }

    /// The synthetic language's entropy rate (mean −ln p over [`synthetic::ENTROPY_SAMPLE`]
    /// tokens) and its standard error; `None` for files, whose true entropy is unknown.
    pub fn entropy(&self, seed: u64) -> Option<(f64, f64)> {
        match self {
            DataSpec::Synthetic(s) => {
                Some(synthetic::SyntheticLanguage::new(s, seed).entropy(synthetic::ENTROPY_SAMPLE))
            }
            _ => None,
        }
    }

    /// `synthetic`, `text` or `tokens` (the study file's `data.source`).
    pub fn kind(&self) -> &'static str {
        match self {
            DataSpec::Synthetic(_) => "synthetic",
            DataSpec::Text(_) => "text",
            DataSpec::Tokens(_) => "tokens",
        }
    }

    /// Short description for tables and logs.
    pub fn describe(&self) -> String {
        match self {
            DataSpec::Synthetic(s) => match s.facts {
                Some(k) => format!(
                    "synthetic facts language (vocab {}, {k} facts, zipf {})",
                    s.vocab, s.zipf
                ),
                None => format!(
                    "synthetic Zipf–Markov language (vocab {}, orders 1..{}, zipf {})",
                    s.vocab, s.order, s.zipf
                ),
            },
            DataSpec::Text(t) => format!("{} text file(s)", t.files.len()),
            DataSpec::Tokens(t) => format!("token file {}", t.path.display()),
        }
    }
}
