//! The study file as written: serde types that mirror the YAML one to one.
//!
//! Every struct denies unknown keys so a typo is an error, never a silently ignored setting.
//! Values here are unchecked; [`super::validate`] turns a [`StudyFile`] into a typed
//! [`super::Study`] and reports every semantic problem with its field path. Keep this file the
//! single source of the JSON Schema (`scalebook schema`): doc comments become descriptions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::units::{Count, Counts, Real, Reals};
use crate::data::TokenDtype;

mod downstream;
mod fits;
mod results;
pub use downstream::*;
pub use fits::*;
pub use results::*;

/// A scalebook study: what to train (or import), how to fit it, and what to report.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StudyFile {
    /// Study-file format version; must be 1.
    pub version: u32,
    /// Short identifier: lower-case letters, digits, `-` and `_`. Names the book chapter and
    /// the study's folder in the store.
    pub name: String,
    /// One-line title shown at the top of the report.
    #[serde(default)]
    pub title: Option<String>,
    /// Longer description, shown in the report's overview.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed for data generation, initialisation and batching; part of every run's identity.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Where the training tokens come from. Default: the built-in synthetic language.
    #[serde(default)]
    pub data: Option<DataFile>,
    /// The model family and the sizes to train.
    #[serde(default)]
    pub model: Option<ModelFile>,
    /// Training-token counts of an N×D grid: every size is trained at every count.
    #[serde(default)]
    pub tokens: Option<Vec<Count>>,
    /// IsoFLOP sweep: for each compute budget, each size gets D = C / (6·N) tokens.
    #[serde(default)]
    pub isoflop: Option<IsoFlopFile>,
    /// Training hyper-parameters shared by every run.
    #[serde(default)]
    pub train: Option<TrainFile>,
    /// Laws to fit to the results.
    #[serde(default)]
    pub fits: Option<Vec<FitFile>>,
    /// Leave points out of the fit and predict them: the test that a law is real.
    #[serde(default)]
    pub holdout: Option<HoldoutFile>,
    /// Train the compute-optimal model the fitted law predicts for a budget.
    #[serde(default, rename = "final")]
    pub final_run: Option<FinalFile>,
    /// What the book chapter shows.
    #[serde(default)]
    pub report: Option<ReportFile>,
    /// Gates for CI: expressions over the report context; a failed check exits with code 4.
    #[serde(default)]
    pub checks: Option<Vec<String>>,
    /// Fit published or previously measured results instead of training.
    #[serde(default)]
    pub results: Option<ResultsFile>,
    /// The study's own run store, relative to the study file: a folder committed next to it
    /// so the results travel with the study (its finished records — spec, result, curve —
    /// and `fits.json`). `run` trains into it, `report` and `verify` read it. Default: the
    /// shared store (`--store`, `$SCALEBOOK_STORE`, `.scalebook/`).
    #[serde(default)]
    pub store: Option<String>,
    /// What trains each run: `builtin` (the built-in CPU engine, default) or your own
    /// command, run once per run through the trainer contract.
    #[serde(default)]
    pub trainer: Option<TrainerFile>,
    /// Where and how runs are scheduled (never part of a run's identity).
    #[serde(default)]
    pub execution: Option<ExecutionFile>,
    /// What every run measures at each evaluation beside the validation loss: `top1`,
    /// `perplexity`, `facts` (the facts language's recall by frequency). Part of the runs'
    /// identity when given.
    #[serde(default)]
    pub metrics: Option<Vec<String>>,
    /// Task files every evaluation scores (ranked classification, one JSONL item per line):
    /// each records `<name>_accuracy` and `<name>_nll`. Part of the runs' identity when
    /// given.
    #[serde(default)]
    pub tasks: Option<Vec<TaskFile>>,
    /// Compare recipes of imported runs (`results:`): which one the laws predict best at a
    /// target scale, and how often smaller scales would have decided right.
    #[serde(default)]
    pub variants: Option<VariantsFile>,
}

/// The execution section.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionFile {
    /// Options of `scalebook run --executor slurm`.
    #[serde(default)]
    pub slurm: Option<SlurmFile>,
}

/// Slurm options; each has a `--slurm-…` override on the command line.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlurmFile {
    /// `--partition`.
    #[serde(default)]
    pub partition: Option<String>,
    /// `--account`.
    #[serde(default)]
    pub account: Option<String>,
    /// `--qos`.
    #[serde(default)]
    pub qos: Option<String>,
    /// Time limit per task in Slurm's format (`30`, `1:30:00`, `2-00:00:00`); default: the
    /// plan's estimate for the task's run × 3, at least 10 minutes.
    #[serde(default)]
    pub time: Option<String>,
    /// CPUs per task (default: `--threads-per-job`, else 1).
    #[serde(default)]
    pub cpus_per_task: Option<Count>,
    /// Memory per task in Slurm's format (`4G`, `500M`); default: the partition's.
    #[serde(default)]
    pub mem: Option<String>,
    /// Generic resources per task, e.g. `gpu:1` for an external trainer on GPUs.
    #[serde(default)]
    pub gres: Option<String>,
    /// More `sbatch` arguments, each one word (`--constraint=a100`).
    #[serde(default)]
    pub extra_args: Option<Vec<String>>,
    /// The scalebook binary the nodes run (default: this one), relative to the study file.
    #[serde(default)]
    pub binary: Option<String>,
}

/// `builtin`, or an external command.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum TrainerFile {
    /// `builtin`: the built-in engine.
    Builtin(BuiltinTrainer),
    /// An external command.
    Command(CommandTrainerFile),
}

/// The built-in engine's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinTrainer {
    Builtin,
}

impl<'de> Deserialize<'de> for TrainerFile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};
        struct TrainerVisitor;
        impl<'de> Visitor<'de> for TrainerVisitor {
            type Value = TrainerFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`builtin`, or a mapping with `command:` and `version:`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TrainerFile, E> {
                match v {
                    "builtin" => Ok(TrainerFile::Builtin(BuiltinTrainer::Builtin)),
                    other => Err(E::custom(format!(
                        "unknown trainer `{other}`: write `builtin`, or a mapping with `command:` \
                         and `version:` for your own trainer"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TrainerFile, A::Error> {
                CommandTrainerFile::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(TrainerFile::Command)
            }
        }
        deserializer.deserialize_any(TrainerVisitor)
    }
}

/// An external trainer (book page "Bring your own trainer").
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandTrainerFile {
    /// The command run once per run, split into words like a shell would (no shell runs
    /// it), with placeholders `{spec}`, `{out}`, `{train_tokens}`, `{val_tokens}`,
    /// `{threads}`, `{device}`, `{name}`, `{key}`. Part of every run's identity.
    pub command: String,
    /// The trainer's version; change it when the trainer's results change. Part of every
    /// run's identity. Give this or `version_file`.
    #[serde(default)]
    pub version: Option<String>,
    /// A file (relative to the study file) whose content hash stands for the version.
    #[serde(default)]
    pub version_file: Option<String>,
    /// Folder the command runs in, relative to the study file (default: the study file's
    /// folder). Not part of the identity.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Extra environment variables for the command. Part of the identity.
    #[serde(default)]
    pub env: Option<std::collections::BTreeMap<String, String>>,
    /// Seconds one run may take; past it the run is killed and recorded as failed.
    #[serde(default)]
    pub timeout: Option<Real>,
    /// Relative difference `verify` accepts between a re-trained run and its record
    /// (default 0.01).
    #[serde(default)]
    pub tolerance: Option<Real>,
    /// How the training tokens reach the command: `file` (default; a file of the whole
    /// stream, which a trainer may map or seek) or `stream` (a named pipe scalebook fills as
    /// the trainer reads it front to back, so no run's stream is kept on disk). Not part of
    /// the identity: the tokens are the same.
    #[serde(default)]
    pub tokens: Option<TokensDelivery>,
}

/// How an external trainer receives its training tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokensDelivery {
    /// A regular file holding the whole stream.
    #[default]
    File,
    /// A named pipe, written as it is read (sequential reads only).
    Stream,
}

/// Kinds of token source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataSourceKind {
    /// The built-in synthetic language (no download; its entropy is known).
    Synthetic,
    /// UTF-8 text files.
    Text,
    /// A pre-tokenized file of little-endian token ids (nanoGPT's `.bin` format).
    Tokens,
}

/// Tokenizers for text data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// One token per byte (vocabulary 256).
    Bytes,
    /// Byte-pair encoding trained locally on the corpus, with `vocab` tokens.
    Bpe,
}

/// The data section. Which keys apply depends on `source`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataFile {
    /// `synthetic` (default), `text` or `tokens`.
    #[serde(default)]
    pub source: Option<DataSourceKind>,
    /// Vocabulary size: synthetic language size, BPE size, or the token file's id range.
    #[serde(default)]
    pub vocab: Option<Count>,
    /// Synthetic only: highest Markov order of the language's mixture (1..=8).
    #[serde(default)]
    pub order: Option<Count>,
    /// Synthetic only: exponent of the Zipf-shaped token frequencies (> 0), or of the fact
    /// frequencies with `facts`.
    #[serde(default)]
    pub zipf: Option<Real>,
    /// Synthetic only: use the facts language with this many facts (2 ..= (vocab − 1)²)
    /// instead of the Markov mixture.
    #[serde(default)]
    pub facts: Option<Count>,
    /// Text only: files or glob patterns, relative to the study file.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// Tokens only: the token file, relative to the study file.
    #[serde(default)]
    pub path: Option<String>,
    /// Tokens only: `u16` (default) or `u32`.
    #[serde(default)]
    pub dtype: Option<TokenDtype>,
    /// Text only: `bytes` (default) or `bpe`.
    #[serde(default)]
    pub tokenizer: Option<TokenizerKind>,
    /// Text and tokens: fraction of the corpus held out for validation (default 0.1).
    #[serde(default)]
    pub val_fraction: Option<Real>,
}

/// The model section.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Model family; only `gpt` for now.
    #[serde(default)]
    pub family: Option<ModelFamily>,
    /// Context length in tokens (1..=8192).
    pub context: Count,
    /// Share the token embedding with the output head (default false, as in the benchmark).
    #[serde(default)]
    pub tie_embeddings: Option<bool>,
    /// `standard` (default) or `mup`: the maximal-update parametrisation, under which the
    /// best learning rate carries over from one width to another of the same depth (the
    /// book's study-file reference lists every multiplier). Under `mup` every size has the
    /// same number of layers.
    #[serde(default)]
    pub parametrization: Option<ParametrizationName>,
    /// Under `parametrization: mup`: the width whose initialisation and learning rates the
    /// others scale from (every multiplier is 1 at it), e.g. the smallest `d_model`.
    #[serde(default)]
    pub base_width: Option<Count>,
    /// Explicit shapes.
    #[serde(default)]
    pub sizes: Option<Vec<SizeFile>>,
    /// A width/depth rule that generates shapes: d_model = aspect × layers, rounded to a
    /// multiple of head_dim; heads = d_model / head_dim.
    #[serde(default)]
    pub rule: Option<RuleFile>,
}

/// `model.parametrization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParametrizationName {
    /// One learning rate and N(0, 0.02) init for every matrix (GPT-2).
    Standard,
    /// The maximal-update parametrisation (Yang et al. 2022).
    Mup,
}

/// Model families scalebook can train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelFamily {
    /// GPT-2-style decoder (pre-LayerNorm, learned positions, GELU MLP).
    Gpt,
}

/// One model shape.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SizeFile {
    /// Transformer blocks.
    pub layers: Count,
    /// Residual stream width; must be divisible by `heads`.
    pub d_model: Count,
    /// Attention heads.
    pub heads: Count,
    /// Display name (not part of the run's identity).
    #[serde(default)]
    pub name: Option<String>,
}

/// A depth-driven shape rule (Kaplan et al. 2020 find loss depends weakly on the aspect ratio
/// d_model / layers over a wide range, so a fixed ratio is a sound default sweep).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Depths to generate, one shape each.
    pub layers: Vec<Count>,
    /// d_model / layers (default 64).
    #[serde(default)]
    pub aspect: Option<Count>,
    /// Width of one attention head (default 64).
    #[serde(default)]
    pub head_dim: Option<Count>,
}

/// Which sizes an IsoFLOP budget trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IsoFlopSizes {
    /// Every size at every budget (when it gets at least one step).
    All,
    /// Sizes whose tokens per parameter at that budget lie in [2, 200], a bracket around
    /// Chinchilla's ~20 that keeps each parabola's minimum inside the sampled range.
    Auto,
}

/// The IsoFLOP section (Hoffmann et al. 2022, approach 2).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IsoFlopFile {
    /// Compute budgets in FLOPs (C ≈ 6·N·D).
    pub budgets: Vec<Real>,
    /// `auto` (default) or `all`.
    #[serde(default)]
    pub sizes: Option<IsoFlopSizes>,
}

/// Learning-rate schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Linear warmup, then cosine decay to `min_lr_ratio` × lr at the token budget.
    Cosine,
    /// Warmup–stable–decay: constant after warmup, linear decay over the last `decay` fraction.
    Wsd,
    /// Linear warmup, then constant.
    Constant,
}

/// The train section.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainFile {
    /// Sequences per optimizer step (default 16), or a list of them: every (size, tokens)
    /// point is trained at each value (with each learning rate, when `lr` is a list too) and
    /// the fits use the best run per point.
    #[serde(default)]
    pub batch: Option<Counts>,
    /// Peak learning rate (default 3e-3), or a list of them: every (size, tokens) point is
    /// trained at each value and the fits use the best run per point.
    #[serde(default)]
    pub lr: Option<Reals>,
    /// `cosine` (default), `wsd` or `constant`.
    #[serde(default)]
    pub schedule: Option<ScheduleKind>,
    /// Warmup as a fraction of the run's steps, in [0, 1) (default 0.05).
    #[serde(default)]
    pub warmup: Option<Real>,
    /// Warmup in tokens instead, the same for every run (with `branches`, a longer token
    /// count added later then keeps every run's key).
    #[serde(default)]
    pub warmup_tokens: Option<Count>,
    /// Final learning rate as a fraction of the peak (default 0.1).
    #[serde(default)]
    pub min_lr_ratio: Option<Real>,
    /// WSD only: fraction of steps spent decaying (default 0.2).
    #[serde(default)]
    pub decay: Option<Real>,
    /// AdamW weight decay on matrices (default 0.1).
    #[serde(default)]
    pub weight_decay: Option<Real>,
    /// AdamW β1 (default 0.9).
    #[serde(default)]
    pub beta1: Option<Real>,
    /// AdamW β2 (default 0.95).
    #[serde(default)]
    pub beta2: Option<Real>,
    /// Global gradient-norm clip; 0 disables (default 1.0).
    #[serde(default)]
    pub grad_clip: Option<Real>,
    /// Evaluate every this many steps (default 50).
    #[serde(default)]
    pub eval_every: Option<Count>,
    /// Size of the fixed validation set in tokens (default 65536).
    #[serde(default)]
    pub eval_tokens: Option<Count>,
    /// WSD only: train one trunk per size and learning rate at the stable rate, and branch a
    /// decay off it at every token count (default false). The warmup is then a fraction of
    /// the trunk (the longest run), shared by every branch.
    #[serde(default)]
    pub branches: Option<bool>,
    /// With `branches`: also train every point as an independent run with this schedule
    /// (`cosine` or `wsd`) and the branches' warmup, and compare the two laws in the chapter.
    #[serde(default)]
    pub compare: Option<ScheduleKind>,
    /// Sweep `lr` at some sizes only and train every other size at the learning rate the
    /// sweep gives it (decided after the sweep).
    #[serde(default)]
    pub lr_transfer: Option<LrTransferFile>,
}

/// `train.lr_transfer`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LrTransferFile {
    /// The sizes (display names from `model.sizes`) trained at every value of `train.lr`.
    pub sweep: Vec<String>,
    /// How every other size gets its learning rate: `mup` (the sweep's optimum at each token
    /// count, which µP carries across widths; the default under `parametrization: mup`) or
    /// `law` (the fitted η*(N, D) = c·N^a·D^b of the swept points; the default otherwise).
    #[serde(default)]
    pub rule: Option<TransferRuleName>,
    /// Transferred sizes also swept, to check the transfer against their own optimum.
    #[serde(default)]
    pub check: Vec<String>,
}

/// `train.lr_transfer.rule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferRuleName {
    Mup,
    Law,
}

/// One report section; give exactly one of `text`, `chart`, `table`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionFile {
    /// Markdown with minijinja expressions over the report context.
    #[serde(default)]
    pub text: Option<String>,
    /// A chart id, e.g. `loss_vs_params`.
    #[serde(default)]
    pub chart: Option<String>,
    /// A table id, e.g. `fits`.
    #[serde(default)]
    pub table: Option<String>,
}

/// The report section.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportFile {
    /// Sections in order; defaults when absent.
    #[serde(default)]
    pub sections: Option<Vec<SectionFile>>,
}
