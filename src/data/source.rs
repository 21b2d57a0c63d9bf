//! Opening a [`DataSpec`] for training: the token stream the trainer draws batches from and
//! the fixed validation set, with every bad-data case turned into a [`DataError`] that names
//! the file.
//!
//! Files are split deterministically: the first (1 − val_fraction) of the tokens train, the
//! rest validate. The synthetic language uses separate streams for the two.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::bpe::Bpe;
use super::synthetic::{SyntheticLanguage, TRAIN_STREAM, VALIDATION_STREAM};
use super::{DataSpec, TokenDtype, Tokenizer};
use crate::rng::{SplitMix64, hash2};
use crate::study::diagnostics::io_reason;

/// Bad data: always names the file (or the source) and says what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct DataError {
    pub path: PathBuf,
    pub message: String,
}

fn data_error(path: &Path, message: impl Into<String>) -> DataError {
    DataError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Tokens of a file corpus: owned (text) or memory-mapped (token files).
enum Tokens {
    /// Byte-level text: the file's bytes are the tokens (no 4-byte copy).
    Bytes(Vec<u8>),
    Owned(Vec<u32>),
    Mapped {
        map: Mmap,
        dtype: TokenDtype,
    },
}

impl Tokens {
    fn len(&self) -> usize {
        match self {
            Tokens::Bytes(v) => v.len(),
            Tokens::Owned(v) => v.len(),
            Tokens::Mapped { map, dtype } => map.len() / width(*dtype),
        }
    }

    #[inline]
    fn get(&self, i: usize) -> u32 {
        match self {
            Tokens::Bytes(v) => u32::from(v[i]),
            Tokens::Owned(v) => v[i],
            Tokens::Mapped { map, dtype } => match dtype {
                TokenDtype::U16 => u32::from(u16::from_le_bytes([map[2 * i], map[2 * i + 1]])),
                TokenDtype::U32 => {
                    u32::from_le_bytes([map[4 * i], map[4 * i + 1], map[4 * i + 2], map[4 * i + 3]])
                }
            },
        }
    }
}

fn width(dtype: TokenDtype) -> usize {
    match dtype {
        TokenDtype::U16 => 2,
        TokenDtype::U32 => 4,
    }
}

enum Kind {
    Synthetic(SyntheticLanguage),
    Corpus {
        tokens: Tokens,
        /// Training tokens are `0..split`, validation `split..`.
        split: usize,
        name: PathBuf,
    },
}

/// An opened token source.
pub struct TokenSource {
    kind: Kind,
    vocab: usize,
    /// The tokenizer trained for this run (BPE only), to save beside the run's record.
    pub tokenizer: Option<Bpe>,
}

/// `batch` sequences of `context + 1` tokens: inputs are the first `context`, targets the last.
pub struct Batch {
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
    pub sequences: usize,
}

/// Draws training batches in a fixed order from a seed.
pub struct Batcher<'a> {
    source: &'a TokenSource,
    context: usize,
    batch: usize,
    state: BatcherState<'a>,
}

enum BatcherState<'a> {
    /// The synthetic stream continues across batches; `carry` is the last token of the
    /// previous batch, so every token after the first is predicted exactly once.
    Stream {
        stream: Box<super::synthetic::SyntheticStream<'a>>,
        carry: u32,
    },
    /// Random windows of the training split (nanoGPT's sampler).
    Windows { rng: SplitMix64 },
}

impl TokenSource {
    /// Open the data of a run. `context` and `eval_tokens` are checked against the corpus.
    pub fn open(
        spec: &DataSpec,
        seed: u64,
        context: usize,
        eval_tokens: usize,
    ) -> Result<Self, DataError> {
        let source = match spec {
            DataSpec::Synthetic(s) => TokenSource {
                kind: Kind::Synthetic(SyntheticLanguage::new(s, seed)),
                vocab: s.vocab as usize,
                tokenizer: None,
            },
            DataSpec::Text(t) => {
                let mut text = Vec::new();
                for path in &t.files {
                    let bytes = std::fs::read(path).map_err(|e| {
                        data_error(path, format!("cannot read text file: {}", io_reason(&e)))
                    })?;
                    if bytes.is_empty() {
                        return Err(data_error(path, "text file is empty"));
                    }
                    if let Err(e) = std::str::from_utf8(&bytes) {
                        return Err(data_error(
                            path,
                            format!("not valid UTF-8 at byte offset {}", e.valid_up_to()),
                        ));
                    }
                    text.extend_from_slice(&bytes);
                }
                // Errors about the whole corpus name its first file and the count.
                let mut name = t.files.first().cloned().unwrap_or_default();
                if t.files.len() > 1 {
                    name.as_mut_os_string()
                        .push(format!(" (and {} more text files)", t.files.len() - 1));
                }
                let (tokens, tokenizer, vocab) = match t.tokenizer {
                    Tokenizer::Bytes => (Tokens::Bytes(text), None, 256),
                    Tokenizer::Bpe { vocab } => {
                        // Train on the training split only, so validation text stays unseen;
                        // trained once per corpus and vocabulary, then read from the cache.
                        let cut = ((text.len() as f64) * (1.0 - t.val_fraction)) as usize;
                        let bpe = super::bpe_cache::trained(&text[..cut], vocab as u32);
                        let tokens = bpe.encode(&text);
                        (Tokens::Owned(tokens), Some(bpe), vocab as usize)
                    }
                };
                let split = ((tokens.len() as f64) * (1.0 - t.val_fraction)) as usize;
                TokenSource {
                    kind: Kind::Corpus {
                        tokens,
                        split,
                        name,
                    },
                    vocab,
                    tokenizer,
                }
            }
            DataSpec::Tokens(t) => {
                let path = &t.path;
                let file = File::open(path).map_err(|e| {
                    data_error(path, format!("cannot open token file: {}", io_reason(&e)))
                })?;
                // SAFETY: the map is read-only; a file truncated underneath us is the same
                // hazard every mmap reader (nanoGPT's np.memmap included) accepts.
                let map = unsafe { Mmap::map(&file) }.map_err(|e| {
                    data_error(path, format!("cannot map token file: {}", io_reason(&e)))
                })?;
                let w = width(t.dtype);
                if map.is_empty() {
                    return Err(data_error(path, "token file is empty"));
                }
                if map.len() % w != 0 {
                    return Err(data_error(
                        path,
                        format!(
                            "size {} bytes is not a multiple of {w} ({:?} tokens); wrong dtype?",
                            map.len(),
                            t.dtype
                        ),
                    ));
                }
                let tokens = Tokens::Mapped {
                    map,
                    dtype: t.dtype,
                };
                for i in 0..tokens.len() {
                    let id = tokens.get(i);
                    if u64::from(id) >= t.vocab {
                        return Err(data_error(
                            path,
                            format!(
                                "token id {id} at token {i} (byte offset {}) is not below vocab {}",
                                i * w,
                                t.vocab
                            ),
                        ));
                    }
                }
                let split = ((tokens.len() as f64) * (1.0 - t.val_fraction)) as usize;
                TokenSource {
                    kind: Kind::Corpus {
                        tokens,
                        split,
                        name: path.clone(),
                    },
                    vocab: t.vocab as usize,
                    tokenizer: None,
                }
            }
        };
        source.check_sizes(context, eval_tokens)?;
        Ok(source)
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    fn check_sizes(&self, context: usize, eval_tokens: usize) -> Result<(), DataError> {
        let Kind::Corpus {
            tokens,
            split,
            name,
        } = &self.kind
        else {
            return Ok(());
        };
        let train = *split;
        let val = tokens.len() - split;
        if train < context + 1 {
            return Err(data_error(
                name,
                format!(
                    "training split has {train} tokens, fewer than context + 1 = {}",
                    context + 1
                ),
            ));
        }
        let needed = validation_sequences(context, eval_tokens) * context + 1;
        if val < needed {
            return Err(data_error(
                name,
                format!(
                    "validation split has {val} tokens but eval_tokens {eval_tokens} needs {needed}; \
                     lower train.eval_tokens or raise data.val_fraction"
                ),
            ));
        }
        Ok(())
    }

    /// `text` as this source's tokens: its bytes for byte-level text, the trained BPE's ids
    /// for BPE text; `None` where the data has no tokenizer (a synthetic language, a token
    /// file).
    pub fn encode(&self, text: &str) -> Option<Vec<u32>> {
        match (&self.kind, &self.tokenizer) {
            (_, Some(bpe)) => Some(bpe.encode(text.as_bytes())),
            (
                Kind::Corpus {
                    tokens: Tokens::Bytes(_),
                    ..
                },
                None,
            ) => Some(text.bytes().map(u32::from).collect()),
            _ => None,
        }
    }

    /// The facts language the tokens come from, when they do (its metrics need its keys).
    pub fn facts(&self) -> Option<&crate::data::facts::FactsLanguage> {
        match &self.kind {
            Kind::Synthetic(lang) => lang.facts(),
            Kind::Corpus { .. } => None,
        }
    }

    /// For each target of [`Self::validation`]'s sequences (`context` per sequence, in
    /// order), the most likely token given the language's true distribution there: the
    /// Zipf–Markov language only (`None` for the facts language and corpora).
    pub fn validation_most_likely(&self, context: usize, eval_tokens: usize) -> Option<Vec<u32>> {
        let Kind::Synthetic(lang) = &self.kind else {
            return None;
        };
        let n = validation_sequences(context, eval_tokens);
        let mut stream = lang.stream(VALIDATION_STREAM);
        let mut best = Vec::with_capacity(n * context + 1);
        for _ in 0..n * context + 1 {
            best.push(stream.most_likely_next()?);
            stream.next_with_p();
        }
        Some(
            (0..n)
                .flat_map(|s| {
                    best[s * context + 1..s * context + context + 1]
                        .iter()
                        .copied()
                })
                .collect(),
        )
    }

    /// The fixed validation set: `eval_tokens / context` contiguous sequences of
    /// `context + 1` tokens (overlapping by one, so each token is predicted once), plus the
    /// true mean −ln p of its targets when the language is synthetic.
    pub fn validation(&self, context: usize, eval_tokens: usize) -> (Vec<u32>, Option<f64>) {
        let n = validation_sequences(context, eval_tokens);
        let total = n * context + 1;
        let (flat, entropy) = match &self.kind {
            Kind::Synthetic(lang) => {
                let mut stream = lang.stream(VALIDATION_STREAM);
                let mut nll = 0.0;
                let flat: Vec<u32> = (0..total)
                    .map(|i| {
                        let (token, p) = stream.next_with_p();
                        if i > 0 {
                            nll -= p.ln();
                        }
                        token
                    })
                    .collect();
                (flat, Some(nll / (total - 1) as f64))
            }
            Kind::Corpus { tokens, split, .. } => {
                ((0..total).map(|i| tokens.get(split + i)).collect(), None)
            }
        };
        let mut sequences = Vec::with_capacity(n * (context + 1));
        for s in 0..n {
            sequences.extend_from_slice(&flat[s * context..s * context + context + 1]);
        }
        (sequences, entropy)
    }

    /// A batcher for training; the same seed gives the same batches.
    /// The training split's token count (a corpus), `None` for a synthetic language (an
    /// endless stream: no token is ever seen twice by design).
    pub fn train_tokens(&self) -> Option<u64> {
        match &self.kind {
            Kind::Corpus { split, .. } => Some(*split as u64),
            _ => None,
        }
    }

    pub fn batcher(&self, seed: u64, batch: usize, context: usize) -> Batcher<'_> {
        let state = match &self.kind {
            Kind::Synthetic(lang) => {
                let mut stream = Box::new(lang.stream(TRAIN_STREAM));
                let carry = stream.next_with_p().0;
                BatcherState::Stream { stream, carry }
            }
            Kind::Corpus { .. } => BatcherState::Windows {
                rng: SplitMix64::new(hash2(seed, 0xba7c4)),
            },
        };
        Batcher {
            source: self,
            context,
            batch,
            state,
        }
    }
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Synthetic(_) => "synthetic".to_string(),
            Kind::Corpus { tokens, name, .. } => {
                format!("{} ({} tokens)", name.display(), tokens.len())
            }
        };
        write!(f, "TokenSource({kind}, vocab {})", self.vocab)
    }
}

/// Validation sequences for `eval_tokens` predicted tokens (rounded down, at least one).
pub fn validation_sequences(context: usize, eval_tokens: usize) -> usize {
    (eval_tokens / context).max(1)
}

impl Batcher<'_> {
    /// Draw and drop `n` batches: the batcher is then where it is after `n` steps.
    pub fn skip(&mut self, n: u64) {
        for _ in 0..n {
            self.next_window();
        }
    }

    pub fn next_batch(&mut self) -> Batch {
        let window = self.next_window();
        split_window(&window, self.batch, self.context)
    }

    /// The next batch as `batch` sequences of `context + 1` tokens, back to back (what
    /// [`Batcher::next_batch`] splits into inputs and targets).
    pub fn next_window(&mut self) -> Vec<u32> {
        let (t, b) = (self.context, self.batch);
        let mut window = vec![0u32; b * (t + 1)];
        match &mut self.state {
            BatcherState::Stream { stream, carry } => {
                let mut flat = vec![0u32; b * t + 1];
                flat[0] = *carry;
                stream.fill(&mut flat[1..]);
                *carry = flat[b * t];
                for s in 0..b {
                    window[s * (t + 1)..(s + 1) * (t + 1)]
                        .copy_from_slice(&flat[s * t..s * t + t + 1]);
                }
            }
            BatcherState::Windows { rng } => {
                let Kind::Corpus { tokens, split, .. } = &self.source.kind else {
                    unreachable!("window batches come from a corpus")
                };
                let max_start = (*split - t - 1) as u64;
                for s in 0..b {
                    let start = rng.below(max_start + 1) as usize;
                    for i in 0..=t {
                        window[s * (t + 1) + i] = tokens.get(start + i);
                    }
                }
            }
        }
        window
    }
}

/// Sequences of `context + 1` tokens → (inputs, targets).
pub fn split_window(window: &[u32], sequences: usize, context: usize) -> Batch {
    let mut inputs = Vec::with_capacity(sequences * context);
    let mut targets = Vec::with_capacity(sequences * context);
    for s in 0..sequences {
        let seq = &window[s * (context + 1)..(s + 1) * (context + 1)];
        inputs.extend_from_slice(&seq[..context]);
        targets.extend_from_slice(&seq[1..]);
    }
    Batch {
        inputs,
        targets,
        sequences,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{SyntheticSpec, TextSpec, TokensSpec};

    fn temp(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("scalebook-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn text(files: Vec<PathBuf>) -> DataSpec {
        DataSpec::Text(TextSpec {
            files,
            tokenizer: Tokenizer::Bytes,
            val_fraction: 0.25,
        })
    }

    fn tokens(path: PathBuf, vocab: u64) -> DataSpec {
        DataSpec::Tokens(TokensSpec {
            path,
            dtype: TokenDtype::U16,
            vocab,
            val_fraction: 0.25,
        })
    }

    #[test]
    fn synthetic_batches_continue_the_stream() {
        let spec = DataSpec::Synthetic(SyntheticSpec {
            vocab: 64,
            order: 2,
            zipf: 1.0,
            facts: None,
        });
        let source = TokenSource::open(&spec, 1, 8, 64).unwrap();
        let mut a = source.batcher(1, 2, 8);
        let first = a.next_batch();
        let second = a.next_batch();
        // Targets are inputs shifted by one; the next batch starts where the last ended.
        assert_eq!(first.inputs[1..8], first.targets[..7]);
        assert_eq!(second.inputs[0], first.targets[15]);
        let mut b = source.batcher(1, 2, 8);
        assert_eq!(b.next_batch().inputs, first.inputs);
        let (val, entropy) = source.validation(8, 64);
        assert_eq!(val.len(), 8 * 9);
        assert!(entropy.unwrap() > 0.0);
    }

    #[test]
    fn text_corpus_splits_and_batches() {
        let path = temp(
            "ok.txt",
            "hello world, this is a small corpus. "
                .repeat(20)
                .as_bytes(),
        );
        let source = TokenSource::open(&text(vec![path]), 1, 8, 32).unwrap();
        assert_eq!(source.vocab(), 256);
        let (val, _) = source.validation(8, 32);
        assert_eq!(val.len(), 4 * 9);
        let batch = source.batcher(3, 4, 8).next_batch();
        assert_eq!(batch.inputs.len(), 32);
        assert!(batch.inputs.iter().all(|&t| t < 256));
    }

    #[test]
    fn bad_text_names_the_file_and_offset() {
        let bad = temp("latin1.txt", b"caf\xe9 au lait");
        let err = TokenSource::open(&text(vec![bad]), 1, 4, 4).unwrap_err();
        assert!(
            err.to_string()
                .contains("latin1.txt: not valid UTF-8 at byte offset 3"),
            "{err}"
        );
        let empty = temp("empty.txt", b"");
        let err = TokenSource::open(&text(vec![empty]), 1, 4, 4).unwrap_err();
        assert!(
            err.to_string().ends_with("empty.txt: text file is empty"),
            "{err}"
        );
        let missing = std::env::temp_dir().join("scalebook-no-such.txt");
        let err = TokenSource::open(&text(vec![missing]), 1, 4, 4).unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
        let short = temp("short.txt", b"tiny corpus");
        let err = TokenSource::open(&text(vec![short]), 1, 64, 64).unwrap_err();
        assert!(
            err.to_string().contains("fewer than context + 1 = 65"),
            "{err}"
        );
        let small_val = temp("smallval.txt", "abcdefgh".repeat(20).as_bytes());
        let err = TokenSource::open(&text(vec![small_val]), 1, 8, 4096).unwrap_err();
        assert!(
            err.to_string().contains("validation split has 40 tokens"),
            "{err}"
        );
    }

    #[test]
    fn token_files_are_checked() {
        let ids: Vec<u8> = (0u16..400).flat_map(|i| (i % 50).to_le_bytes()).collect();
        let good = temp("good.bin", &ids);
        let source = TokenSource::open(&tokens(good.clone(), 50), 1, 8, 16).unwrap();
        assert_eq!(source.vocab(), 50);
        let batch = source.batcher(1, 2, 8).next_batch();
        // Consecutive ids in the file are consecutive mod 50.
        assert_eq!((batch.inputs[0] + 1) % 50, batch.targets[0]);
        let err = TokenSource::open(&tokens(good, 40), 1, 8, 16).unwrap_err();
        assert!(
            err.to_string()
                .contains("token id 40 at token 40 (byte offset 80) is not below vocab 40"),
            "{err}"
        );
        let odd = temp("odd.bin", &[1, 2, 3]);
        let err = TokenSource::open(&tokens(odd, 50), 1, 8, 16).unwrap_err();
        assert!(err.to_string().contains("not a multiple of 2"), "{err}");
        let empty = temp("empty.bin", &[]);
        let err = TokenSource::open(&tokens(empty, 50), 1, 8, 16).unwrap_err();
        assert!(err.to_string().contains("token file is empty"), "{err}");
    }
}
