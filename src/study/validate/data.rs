//! The `data:` section: which token source, its keys, and that its files exist.

use std::path::PathBuf;

use super::Validator;
use crate::data::{DataSpec, SyntheticSpec, TextSpec, TokenDtype, Tokenizer, TokensSpec};
use crate::study::diagnostics::io_reason;
use crate::study::file::{DataFile, DataSourceKind, TokenizerKind};
use crate::study::units::Count;

/// Largest vocabulary accepted (a typo guard; real vocabularies are far below it).
const MAX_VOCAB: u64 = 1 << 22;
/// Most facts the facts language accepts.
const MAX_FACTS: u64 = 1 << 22;

impl Validator {
    pub(super) fn data(&mut self, f: Option<&DataFile>) -> Option<DataSpec> {
        let default = DataFile {
            source: None,
            vocab: None,
            order: None,
            zipf: None,
            facts: None,
            paths: None,
            path: None,
            dtype: None,
            tokenizer: None,
            val_fraction: None,
        };
        let f = f.unwrap_or(&default);
        let source = f.source.unwrap_or(DataSourceKind::Synthetic);
        let val_fraction = |v: &mut Self| {
            v.real(
                "data.val_fraction",
                f.val_fraction,
                0.1,
                "in (0, 0.5]",
                |x| x > 0.0 && x <= 0.5,
            )
        };
        match source {
            DataSourceKind::Synthetic => {
                let why = "to source: synthetic";
                self.not_here("data.paths", &f.paths, why);
                self.not_here("data.path", &f.path, why);
                self.not_here("data.dtype", &f.dtype, why);
                self.not_here("data.tokenizer", &f.tokenizer, why);
                self.not_here("data.val_fraction", &f.val_fraction, why);
                let vocab = self.count("data.vocab", f.vocab, 256, 2, MAX_VOCAB);
                let order = self.count("data.order", f.order, 3, 1, 8);
                let zipf = self.real("data.zipf", f.zipf, 1.1, "in (0, 4]", |z| {
                    z > 0.0 && z <= 4.0
                });
                let facts = f.facts.map(|_| {
                    self.not_here("data.order", &f.order, "to the facts language");
                    // Every fact needs its own key pair, and the generator keeps a table entry
                    // per fact (about 30 bytes): at most 2²² facts.
                    let pairs = (vocab.max(2) - 1).saturating_pow(2).min(MAX_FACTS);
                    self.count("data.facts", f.facts, 2, 2, pairs.max(2))
                });
                if facts.is_some() && vocab < 3 {
                    self.error("data.vocab", "the facts language needs at least 3 tokens");
                }
                Some(DataSpec::Synthetic(SyntheticSpec {
                    vocab,
                    order,
                    zipf,
                    facts,
                }))
            }
            DataSourceKind::Text => {
                let why = "to source: text";
                self.not_here("data.path", &f.path, why);
                self.not_here("data.dtype", &f.dtype, why);
                self.not_here("data.order", &f.order, why);
                self.not_here("data.zipf", &f.zipf, why);
                self.not_here("data.facts", &f.facts, why);
                let tokenizer = match f.tokenizer.unwrap_or(TokenizerKind::Bytes) {
                    TokenizerKind::Bytes => {
                        if let Some(Count(v)) = f.vocab
                            && v != 256
                        {
                            self.error(
                                "data.vocab",
                                format!(
                                    "the bytes tokenizer has exactly 256 tokens, found {v}; \
                                     remove `vocab` or use `tokenizer: bpe`"
                                ),
                            );
                        }
                        Tokenizer::Bytes
                    }
                    TokenizerKind::Bpe => match f.vocab {
                        None => {
                            self.error(
                                "data.vocab",
                                "missing: `tokenizer: bpe` needs a vocabulary size, e.g. `vocab: 1024`",
                            );
                            Tokenizer::Bytes
                        }
                        Some(v) => Tokenizer::Bpe {
                            vocab: self.count("data.vocab", Some(v), 512, 257, MAX_VOCAB),
                        },
                    },
                };
                let val_fraction = val_fraction(self);
                let files = self.text_files(f.paths.as_deref())?;
                Some(DataSpec::Text(TextSpec {
                    files,
                    tokenizer,
                    val_fraction,
                }))
            }
            DataSourceKind::Tokens => {
                let why = "to source: tokens";
                self.not_here("data.paths", &f.paths, why);
                self.not_here("data.tokenizer", &f.tokenizer, why);
                self.not_here("data.order", &f.order, why);
                self.not_here("data.zipf", &f.zipf, why);
                self.not_here("data.facts", &f.facts, why);
                let dtype = f.dtype.unwrap_or(TokenDtype::U16);
                let vocab = match f.vocab {
                    None => {
                        self.error(
                            "data.vocab",
                            "missing: a token file needs its vocabulary size (ids are < vocab)",
                        );
                        2
                    }
                    Some(v) => self.count("data.vocab", Some(v), 2, 2, dtype.max_vocab()),
                };
                let val_fraction = val_fraction(self);
                let Some(rel) = &f.path else {
                    self.error("data.path", "missing: the token file to read");
                    return None;
                };
                let path = self.existing_file("data.path", rel)?;
                Some(DataSpec::Tokens(TokensSpec {
                    path,
                    dtype,
                    vocab,
                    val_fraction,
                }))
            }
        }
    }

    /// Resolve `rel` against the study's folder and require a readable file.
    pub(super) fn existing_file(&mut self, field: &str, rel: &str) -> Option<PathBuf> {
        let path = self.dir.join(rel);
        match std::fs::metadata(&path) {
            // Absolute, so a run spec trains from any working directory.
            Ok(meta) if meta.is_file() => Some(std::fs::canonicalize(&path).unwrap_or(path)),
            Ok(_) => {
                self.error(field, format!("`{}` is not a file", path.display()));
                None
            }
            Err(e) => {
                self.error(
                    field,
                    format!(
                        "cannot read `{}`: {} (paths are relative to the study file)",
                        path.display(),
                        io_reason(&e)
                    ),
                );
                None
            }
        }
    }

    pub(super) fn text_files(&mut self, patterns: Option<&[String]>) -> Option<Vec<PathBuf>> {
        let Some(patterns) = patterns else {
            self.error(
                "data.paths",
                "missing: the text files (or glob patterns) to train on",
            );
            return None;
        };
        if patterns.is_empty() {
            self.error(
                "data.paths",
                "empty list: give at least one file or glob pattern",
            );
            return None;
        }
        let mut files = Vec::new();
        let mut ok = true;
        for (i, pattern) in patterns.iter().enumerate() {
            let field = format!("data.paths[{i}]");
            let full = self.dir.join(pattern);
            let Some(full_str) = full.to_str() else {
                self.error(field, "path is not valid UTF-8");
                ok = false;
                continue;
            };
            let matches = match glob::glob(full_str) {
                Ok(paths) => paths,
                Err(e) => {
                    self.error(field, format!("invalid glob pattern `{pattern}`: {e}"));
                    ok = false;
                    continue;
                }
            };
            let mut found: Vec<PathBuf> = Vec::new();
            for entry in matches {
                match entry {
                    Ok(p) if p.is_file() => found.push(std::fs::canonicalize(&p).unwrap_or(p)),
                    Ok(_) => {}
                    Err(e) => {
                        self.error(
                            field.clone(),
                            format!(
                                "cannot read `{}`: {}",
                                e.path().display(),
                                io_reason(e.error())
                            ),
                        );
                        ok = false;
                    }
                }
            }
            if found.is_empty() {
                self.error(
                    field,
                    format!(
                        "no file matches `{pattern}` (looked in `{}`; paths are relative to the study file)",
                        self.dir.display()
                    ),
                );
                ok = false;
            }
            found.sort();
            files.extend(found);
        }
        ok.then_some(files)
    }
}
