//! Run records: what a run leaves behind — `spec.json` (its [`RunSpec`]), `curve.jsonl` (one
//! [`CurvePoint`] per line) and `result.json` (one [`RunResult`]), written atomically, result
//! last — and their one reader ([`read`]), which every consumer (the store, collection, fits,
//! reports, verification) goes through, so an entry is judged readable or corrupt the same
//! way everywhere.

pub mod read;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::DataIdentity;
use crate::data::bpe::Bpe;
use crate::data::identity::hex;
use crate::files::atomic::write_atomic;
use crate::study::RunSpec;

/// The version of the divergence rule (`train::divergence`); records of diverged runs carry
/// it, and a run stopped by an older rule (rule 1: any loss above the initial one after
/// warm-up) is trained again.
pub const DIVERGENCE_RULE: u32 = 2;

/// The loss spikes of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spikes {
    /// Number of spikes.
    pub count: u64,
    /// The largest spike: the step of its peak (1-based), the peak loss, and the peak over
    /// the lowest moving mean before it.
    pub largest_step: Option<u64>,
    pub largest_loss: Option<f64>,
    pub largest_ratio: Option<f64>,
    /// Steps spent above the run's initial loss after warm-up (recovered excursions).
    pub steps_above_initial: u64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Trained to its token budget.
    Ok,
    /// Stopped by the divergence rule (`train::divergence`): a non-finite loss, or a loss
    /// that stayed above its initial value after warm-up or never came back below it.
    Diverged,
    /// Stopped by an error (the reason says which).
    Failed,
}

/// One point of the learning curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Optimizer steps done.
    pub step: u64,
    /// Tokens trained so far.
    pub tokens: u64,
    /// Mean training loss (nats/token) over the steps since the previous point.
    pub train_loss: f64,
    /// Mean validation loss over the whole validation set, when evaluated at this step.
    pub val_loss: Option<f64>,
    /// Learning rate of the step.
    pub lr: f64,
    /// Seconds since training started (evaluation included).
    pub wall_seconds: f64,
    /// The study's metrics (`metrics:`) at this evaluation, by name (absent when it
    /// measures none, and between evaluations).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
}

/// The record of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub tool_version: String,
    pub key: String,
    pub name: String,
    pub status: RunStatus,
    /// Why the run diverged or failed.
    pub reason: Option<String>,
    /// The step at which divergence was detected.
    pub diverged_at_step: Option<u64>,
    /// The divergence rule the run was judged by ([`DIVERGENCE_RULE`]; absent in records
    /// made before rule 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divergence_rule: Option<u32>,
    /// Loss spikes the run recovered from (absent in older records and for mock runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spikes: Option<Spikes>,
    pub layers: u64,
    pub d_model: u64,
    pub heads: u64,
    pub context: u64,
    pub vocab: u64,
    pub params_total: u64,
    pub params_embedding: u64,
    pub params_non_embedding: u64,
    /// Planned training tokens (the run's D).
    pub tokens: u64,
    /// Tokens actually trained (less than `tokens` only when the run stopped early).
    pub tokens_trained: u64,
    pub steps: u64,
    pub flops: f64,
    pub flops_6nd: f64,
    /// Final validation loss: mean nats/token over the fixed validation set.
    pub val_loss: Option<f64>,
    pub best_val_loss: Option<f64>,
    /// The study's metrics (`metrics:`) at the final evaluation, by name: what the metric
    /// laws read (absent when the study measures none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    /// Mean training loss over the last logged interval.
    pub train_loss: Option<f64>,
    /// Whole run, evaluation included.
    pub wall_seconds: f64,
    /// Optimizer steps only.
    pub train_seconds: f64,
    /// Tokens trained per second of `train_seconds` (a branch: of `computed_tokens`).
    pub tokens_per_second: f64,
    /// A branch of a shared trunk: the tokens this run trained itself — its decay and the
    /// trunk's steps since the snapshot it continued from — where the rest of
    /// `tokens_trained` was trained once for every branch of the trunk. Its times are for
    /// these tokens only. Absent when the run trained every token itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_tokens: Option<u64>,
    /// The training split's token count (text and token corpora): the unique tokens the run's
    /// D were drawn from, so `tokens / unique_tokens` is its (nominal) epochs. Absent for the
    /// synthetic languages, which never repeat, and in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_tokens: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    pub seed: u64,
    pub threads: usize,
    pub host: String,
    pub cpu: String,
    /// The engine's instruction-set path ([`crate::isa::path`]): with `cpu` and the trainer
    /// version, what the engine's bits depend on (absent in older records and mock runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isa: Option<String>,
    /// What an external trainer trained on, as it said (`cpu`, `cuda:0 (…)`); absent for
    /// the built-in engine and the mock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The parameters an external trainer says it built, when that differs from the plan's
    /// `params_total` (the report flags the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_built: Option<u64>,
    pub data: DataIdentity,
    /// Entropy rate of the synthetic language and its standard error (None for files).
    pub data_entropy_nats: Option<f64>,
    pub data_entropy_stderr: Option<f64>,
    /// True mean −ln p of this validation set's tokens: the loss a perfect model would get.
    pub val_entropy_nats: Option<f64>,
    /// sha256 of the trained BPE tokenizer saved as `tokenizer.json`, if any.
    pub tokenizer_sha256: Option<String>,
    pub spec: RunSpec,
}

impl RunResult {
    /// How much longer this run would have taken training every token itself: 1, or for a
    /// branch that continued its trunk, all its tokens over the tokens it trained.
    pub fn independent_factor(&self) -> f64 {
        match self.computed_tokens {
            Some(c) if c > 0 => self.tokens_trained as f64 / c as f64,
            _ => 1.0,
        }
    }

    /// The wall time of this run trained on its own, at its measured speed (the cost law's
    /// measure: a branch's own time covers only the steps it trained).
    pub fn independent_wall_seconds(&self) -> f64 {
        self.wall_seconds * self.independent_factor()
    }

    /// Every number of the record that is not finite, by field (JSON cannot carry them: a
    /// record holding one would not read back).
    pub fn non_finite(&self) -> Vec<(&'static str, f64)> {
        let fields = [
            ("flops", Some(self.flops)),
            ("flops_6nd", Some(self.flops_6nd)),
            ("val_loss", self.val_loss),
            ("best_val_loss", self.best_val_loss),
            ("train_loss", self.train_loss),
            ("wall_seconds", Some(self.wall_seconds)),
            ("train_seconds", Some(self.train_seconds)),
            ("tokens_per_second", Some(self.tokens_per_second)),
            ("data_entropy_nats", self.data_entropy_nats),
            ("data_entropy_stderr", self.data_entropy_stderr),
            ("val_entropy_nats", self.val_entropy_nats),
        ];
        fields
            .into_iter()
            .filter_map(|(name, v)| v.filter(|v| !v.is_finite()).map(|v| (name, v)))
            .collect()
    }

    /// Make a record whose numbers are not all finite a failed run that names them, with
    /// those numbers cleared (so it can be written and read back). Returns whether it did.
    pub fn refuse_non_finite(&mut self, source: &str) -> bool {
        let bad = self.non_finite();
        if bad.is_empty() {
            return false;
        }
        let said: Vec<String> = bad.iter().map(|(f, v)| format!("{f} = {v}")).collect();
        self.status = RunStatus::Failed;
        self.reason = Some(format!(
            "{source} gave a number that is not finite: {}",
            said.join(", ")
        ));
        let zero = |v: &mut f64| {
            if !v.is_finite() {
                *v = 0.0;
            }
        };
        let unset = |v: &mut Option<f64>| *v = v.filter(|x| x.is_finite());
        for v in [
            &mut self.flops,
            &mut self.flops_6nd,
            &mut self.wall_seconds,
            &mut self.train_seconds,
            &mut self.tokens_per_second,
        ] {
            zero(v);
        }
        for v in [
            &mut self.val_loss,
            &mut self.best_val_loss,
            &mut self.train_loss,
            &mut self.data_entropy_nats,
            &mut self.data_entropy_stderr,
            &mut self.val_entropy_nats,
        ] {
            unset(v);
        }
        true
    }

    /// A record of `spec` with its planned numbers filled in and nothing measured yet
    /// (losses `None`, times 0); the trainer, the mock executor and crash reports complete it.
    pub fn unfinished(spec: &RunSpec, status: RunStatus, reason: Option<String>) -> RunResult {
        let id = &spec.identity;
        let m = &id.model;
        RunResult {
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            key: spec.key.clone(),
            name: spec.name.clone(),
            status,
            reason,
            diverged_at_step: None,
            divergence_rule: None,
            spikes: None,
            layers: m.layers,
            d_model: m.d_model,
            heads: m.heads,
            context: m.context,
            vocab: m.vocab,
            params_total: spec.params.total,
            params_embedding: spec.params.embedding,
            params_non_embedding: spec.params.non_embedding,
            tokens: id.tokens,
            tokens_trained: 0,
            steps: spec.steps,
            flops: spec.flops,
            flops_6nd: spec.flops_6nd,
            val_loss: None,
            best_val_loss: None,
            metrics: BTreeMap::new(),
            train_loss: None,
            wall_seconds: 0.0,
            train_seconds: 0.0,
            tokens_per_second: 0.0,
            computed_tokens: None,
            unique_tokens: None,
            peak_rss_bytes: None,
            seed: id.seed,
            threads: 0,
            host: crate::sys::host_name(),
            cpu: crate::sys::cpu_model(),
            isa: Some(crate::isa::path()),
            device: None,
            params_built: None,
            data: id.data.clone(),
            data_entropy_nats: spec.data_entropy.map(|e| e.0),
            data_entropy_stderr: spec.data_entropy.map(|e| e.1),
            val_entropy_nats: None,
            tokenizer_sha256: None,
            spec: spec.clone(),
        }
    }
}

/// A digest of every number the trainer computed for a run — each curve point's step,
/// tokens, losses and learning rate, and the final losses — but not its timings: equal
/// digests mean bit-identical training (16 hex digits of sha256).
pub fn numerics_digest(result: &RunResult, curve: &[CurvePoint]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let real =
        |h: &mut Sha256, v: Option<f64>| h.update(v.unwrap_or(f64::NAN).to_bits().to_le_bytes());
    // Metrics, when a run measures any, by name (a run without them hashes as it always has).
    let metrics = |h: &mut Sha256, m: &BTreeMap<String, f64>| {
        for (name, v) in m {
            h.update(name.as_bytes());
            h.update(v.to_bits().to_le_bytes());
        }
    };
    for p in curve {
        real(&mut h, Some(p.step as f64));
        real(&mut h, Some(p.tokens as f64));
        real(&mut h, Some(p.train_loss));
        real(&mut h, p.val_loss);
        real(&mut h, Some(p.lr));
        metrics(&mut h, &p.metrics);
    }
    real(&mut h, result.val_loss);
    real(&mut h, result.best_val_loss);
    real(&mut h, result.train_loss);
    metrics(&mut h, &result.metrics);
    hex(&h.finalize())[..16].to_string()
}

/// The tokenizer's JSON (deterministic: fields in order, merges as pairs).
pub fn tokenizer_json(bpe: &Bpe) -> String {
    serde_json::to_string(bpe).expect("tokenizer is plain data")
}

pub fn tokenizer_sha256(bpe: &Bpe) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(tokenizer_json(bpe).as_bytes()))
}

/// Write a run's files into `dir`: spec, curve, tokenizer, then the result. A number that
/// is not finite is refused (`InvalidData`, naming it): JSON cannot carry it, and a record
/// holding one would not read back.
pub fn write_run(
    dir: &Path,
    result: &RunResult,
    curve: &[CurvePoint],
    tokenizer: Option<&Bpe>,
) -> io::Result<()> {
    let refuse = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("run {}: {what} is not finite; not recorded", result.name),
        )
    };
    if let Some((field, v)) = result.non_finite().first() {
        return Err(refuse(format!("result {field} = {v}")));
    }
    for p in curve {
        let numbers = [("train_loss", Some(p.train_loss)), ("val_loss", p.val_loss)]
            .into_iter()
            .chain([("lr", Some(p.lr)), ("wall_seconds", Some(p.wall_seconds))]);
        for (field, v) in numbers {
            if let Some(v) = v.filter(|v| !v.is_finite()) {
                return Err(refuse(format!("curve step {} {field} = {v}", p.step)));
            }
        }
    }
    std::fs::create_dir_all(dir)?;
    write_atomic(&dir.join("spec.json"), pretty(&result.spec).as_bytes())?;
    let mut lines = String::new();
    for point in curve {
        lines.push_str(&serde_json::to_string(point).expect("curve point is plain data"));
        lines.push('\n');
    }
    write_atomic(&dir.join("curve.jsonl"), lines.as_bytes())?;
    if let Some(bpe) = tokenizer {
        write_atomic(&dir.join("tokenizer.json"), tokenizer_json(bpe).as_bytes())?;
    }
    write_atomic(&dir.join("result.json"), pretty(result).as_bytes())
}

/// Pretty JSON with a trailing newline.
pub fn pretty<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("records are plain data");
    s.push('\n');
    s
}
