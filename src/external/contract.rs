//! The trainer contract, version 1: what scalebook hands an external trainer (the [`Job`]
//! JSON and two token files) and what it reads back (`curve.jsonl` and `result.json`),
//! judged strictly — anything missing or malformed fails the run with the reason, never a
//! half-valid record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::DataIdentity;
use crate::model::{GptConfig, Multipliers, ParamCounts, Parametrization};
use crate::record::CurvePoint;
use crate::study::{RunSpec, Schedule};

/// The contract's version, in every job file.
pub const CONTRACT: u32 = 1;

/// Everything a trainer needs for one run (`{spec}` / `$SCALEBOOK_SPEC`).
#[derive(Debug, Serialize)]
pub struct Job {
    pub contract: u32,
    pub name: String,
    pub key: String,
    pub model: JobModel,
    /// The plan's parameter counts; a trainer that builds another count is flagged.
    pub params: ParamCounts,
    /// Training tokens: `steps × batch × context`.
    pub tokens: u64,
    pub steps: u64,
    /// Sequences per optimizer step.
    pub batch: u64,
    pub optimizer: JobOptimizer,
    pub schedule: JobSchedule,
    /// Evaluate on the whole validation file every this many steps and at the last step.
    pub eval_every: u64,
    pub seed: u64,
    pub data: JobData,
    /// Where the trainer writes `curve.jsonl` and `result.json`.
    pub out: PathBuf,
    pub curve: PathBuf,
    pub result: PathBuf,
    pub threads: usize,
    /// The accelerator assigned to the run (`CUDA_VISIBLE_DEVICES` is set to it), or `cpu`.
    pub device: String,
    /// The metrics the study asks for (`metrics:`): the trainer reports each, by name, at
    /// every evaluation (`metrics` of the curve line) and at the end (`metrics` of the
    /// result); a trainer that cannot measure one refuses the job. The tasks' names
    /// (`<task>_accuracy`, `<task>_nll`) are among them.
    pub metrics: Vec<String>,
    /// The task files to score at every evaluation (the study's `tasks:`), their items as
    /// token ids; absent without them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<JobTask>,
}

/// A task the trainer scores at every evaluation: each item's choices ranked by the summed
/// (`score: sum`) or per-token (`mean`) log-likelihood the model gives them after the item's
/// context; `accuracy` is the share of items whose correct choice ranks first, `nll` the
/// correct choice's negative log-likelihood (summed, or per token) averaged over the items.
#[derive(Debug, Serialize)]
pub struct JobTask {
    pub name: String,
    pub score: crate::study::tasks::Score,
    /// JSONL, one item per line: `{"context": [ids], "choices": [[ids], …], "answer": k}`.
    pub items: PathBuf,
    /// The metric names to report its accuracy and task loss under.
    pub accuracy: String,
    pub nll: String,
}

/// The model: the family, its shape (`layers`, `d_model`, `heads`, `context`, `vocab`,
/// `tie_embeddings`), its parametrisation (`{"kind": "standard"}` or `{"kind": "mup",
/// "base_width": 16}`) and the width multipliers that parametrisation gives this shape (all
/// 1 when standard): a trainer that does not implement them refuses a µP job.
#[derive(Debug, Serialize)]
pub struct JobModel {
    pub family: &'static str,
    pub layers: u64,
    pub d_model: u64,
    pub heads: u64,
    pub context: u64,
    pub vocab: u64,
    pub tie_embeddings: bool,
    pub parametrization: Parametrization,
    pub multipliers: JobMultipliers,
    #[serde(skip)]
    pub shape: GptConfig,
}

/// [`Multipliers`], spelled out for a trainer.
#[derive(Debug, Serialize)]
pub struct JobMultipliers {
    /// Initial standard deviation of the blocks' matrices relative to 0.02.
    pub hidden_init: f64,
    /// Learning rate of the blocks' matrices relative to the step's.
    pub hidden_lr: f64,
    /// Attention scores' factor relative to 1/√d_head.
    pub attention: f64,
    /// Factor on the logits.
    pub logits: f64,
}

impl JobModel {
    fn new(shape: &GptConfig) -> JobModel {
        let m = Multipliers::of(shape);
        JobModel {
            family: "gpt",
            layers: shape.layers,
            d_model: shape.d_model,
            heads: shape.heads,
            context: shape.context,
            vocab: shape.vocab,
            tie_embeddings: shape.tie_embeddings,
            parametrization: shape.parametrization,
            multipliers: JobMultipliers {
                hidden_init: m.hidden_init,
                hidden_lr: m.hidden_lr,
                attention: m.attention,
                logits: m.logits,
            },
            shape: *shape,
        }
    }
}

/// AdamW (weight decay on matrices only) with global gradient-norm clipping (0: none).
#[derive(Debug, Serialize)]
pub struct JobOptimizer {
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub grad_clip: f64,
}

/// The learning-rate schedule, described and spelled out per step.
#[derive(Debug, Serialize)]
pub struct JobSchedule {
    #[serde(flatten)]
    pub kind: Schedule,
    pub warmup_steps: u64,
    /// The learning rate of each step, 0-based: use it and the schedule is exact.
    pub lr: Vec<f64>,
}

#[derive(Debug, Serialize)]
pub struct JobData {
    pub description: String,
    pub identity: DataIdentity,
    /// `u16` or `u32`, little-endian.
    pub dtype: &'static str,
    /// Tokens per sequence: `context + 1` (inputs are the first `context`, targets the
    /// last `context`).
    pub sequence_tokens: u64,
    /// `steps × batch` sequences, in training order: step k uses sequences
    /// `k·batch .. (k+1)·batch`.
    pub train_tokens: PathBuf,
    pub train_sequences: u64,
    /// The fixed validation set every trainer is judged on.
    pub val_tokens: PathBuf,
    pub val_sequences: u64,
}

impl Job {
    pub fn new(spec: &RunSpec, dir: &Path, threads: usize, device: &str) -> Job {
        let id = &spec.identity;
        let m = &id.model;
        let t = &id.train;
        let lr_plan = spec.lr_plan();
        let (dtype, _) = dtype_for(m.vocab);
        let val_sequences =
            crate::data::source::validation_sequences(m.context as usize, t.eval_tokens as usize);
        Job {
            contract: CONTRACT,
            name: spec.name.clone(),
            key: spec.key.clone(),
            model: JobModel::new(m),
            params: spec.params,
            tokens: spec.steps * t.batch * m.context,
            steps: spec.steps,
            batch: t.batch,
            optimizer: JobOptimizer {
                lr: t.lr,
                weight_decay: t.weight_decay,
                beta1: t.beta1,
                beta2: t.beta2,
                grad_clip: t.grad_clip,
            },
            schedule: JobSchedule {
                kind: t.schedule,
                warmup_steps: lr_plan.warmup(),
                lr: (0..spec.steps).map(|s| lr_plan.at(s)).collect(),
            },
            eval_every: t.eval_every,
            seed: id.seed,
            data: JobData {
                description: spec.data.describe(),
                identity: id.data.clone(),
                dtype,
                sequence_tokens: m.context + 1,
                train_tokens: dir.join("train.bin"),
                train_sequences: spec.steps * t.batch,
                val_tokens: dir.join("val.bin"),
                val_sequences: val_sequences as u64,
            },
            out: dir.to_path_buf(),
            curve: dir.join("curve.jsonl"),
            result: dir.join("result.json"),
            threads,
            device: device.to_string(),
            metrics: id
                .metrics
                .iter()
                .cloned()
                .chain(spec.tasks.iter().flat_map(|t| t.recorded()))
                .collect(),
            tasks: spec
                .tasks
                .iter()
                .map(|t| {
                    let [accuracy, nll] = t.recorded();
                    JobTask {
                        name: t.identity.name.clone(),
                        score: t.identity.score,
                        items: dir.join(format!("task-{}.jsonl", t.identity.name)),
                        accuracy,
                        nll,
                    }
                })
                .collect(),
        }
    }

    /// The job as environment variables (`SCALEBOOK_*`), for trainers that take no JSON.
    pub fn env(&self, spec_path: &Path) -> Vec<(String, String)> {
        let path = |p: &Path| p.display().to_string();
        let o = &self.optimizer;
        [
            ("SPEC", path(spec_path)),
            ("OUT", path(&self.out)),
            ("CURVE", path(&self.curve)),
            ("RESULT", path(&self.result)),
            ("TRAIN_TOKENS", path(&self.data.train_tokens)),
            ("VAL_TOKENS", path(&self.data.val_tokens)),
            ("TOKEN_DTYPE", self.data.dtype.to_string()),
            ("RUN_NAME", self.name.clone()),
            ("RUN_KEY", self.key.clone()),
            ("LAYERS", self.model.shape.layers.to_string()),
            ("D_MODEL", self.model.shape.d_model.to_string()),
            ("HEADS", self.model.shape.heads.to_string()),
            ("CONTEXT", self.model.shape.context.to_string()),
            ("VOCAB", self.model.shape.vocab.to_string()),
            (
                "TIE_EMBEDDINGS",
                self.model.shape.tie_embeddings.to_string(),
            ),
            (
                "PARAMETRIZATION",
                match self.model.parametrization {
                    Parametrization::Standard => "standard".into(),
                    Parametrization::Mup { .. } => "mup".into(),
                },
            ),
            (
                "BASE_WIDTH",
                match self.model.parametrization {
                    Parametrization::Standard => String::new(),
                    Parametrization::Mup { base_width } => base_width.to_string(),
                },
            ),
            ("PARAMS", self.params.total.to_string()),
            ("TOKENS", self.tokens.to_string()),
            ("STEPS", self.steps.to_string()),
            ("BATCH", self.batch.to_string()),
            ("LR", o.lr.to_string()),
            ("WARMUP_STEPS", self.schedule.warmup_steps.to_string()),
            ("WEIGHT_DECAY", o.weight_decay.to_string()),
            ("BETA1", o.beta1.to_string()),
            ("BETA2", o.beta2.to_string()),
            ("GRAD_CLIP", o.grad_clip.to_string()),
            ("EVAL_EVERY", self.eval_every.to_string()),
            ("SEED", self.seed.to_string()),
            ("THREADS", self.threads.to_string()),
            ("DEVICE", self.device.clone()),
            ("METRICS", self.metrics.join(",")),
        ]
        .into_iter()
        .map(|(k, v)| (format!("SCALEBOOK_{k}"), v))
        .collect()
    }
}

/// Token files hold `u16` ids when the vocabulary fits, else `u32` (nanoGPT's convention).
pub fn dtype_for(vocab: u64) -> (&'static str, usize) {
    if vocab <= 1 << 16 {
        ("u16", 2)
    } else {
        ("u32", 4)
    }
}

/// A loss as trainers write it: a number, `null`, or `NaN` / `Infinity` (which Python's
/// `json` writes for non-finite floats).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
enum LossValue {
    Number(f64),
    Word(NonFinite),
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
enum NonFinite {
    NaN,
    Infinity,
    #[serde(rename = "-Infinity")]
    NegInfinity,
}

impl LossValue {
    fn value(self) -> f64 {
        match self {
            LossValue::Number(v) => v,
            LossValue::Word(NonFinite::NaN) => f64::NAN,
            LossValue::Word(NonFinite::Infinity) => f64::INFINITY,
            LossValue::Word(NonFinite::NegInfinity) => f64::NEG_INFINITY,
        }
    }
}

/// One line of the trainer's `curve.jsonl`. A field the contract does not name is an error
/// (a metric goes under `metrics`), never dropped unread.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CurveLine {
    step: u64,
    tokens: u64,
    train_loss: LossValue,
    #[serde(default)]
    val_loss: Option<LossValue>,
    lr: f64,
    wall_seconds: f64,
    /// Metrics by name, on evaluation lines.
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
}

/// The trainer's `result.json` (a field the contract does not name is an error).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultFile {
    val_loss: Option<LossValue>,
    wall_seconds: f64,
    /// Parameters the trainer actually built.
    params: u64,
    /// What it trained on (`cpu`, `cuda:0 (NVIDIA H100)`, …).
    device: String,
    #[serde(default)]
    train_seconds: Option<f64>,
    #[serde(default)]
    peak_memory_bytes: Option<u64>,
    /// Metrics by name at the end of training.
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
}

/// What the trainer reported.
#[derive(Debug)]
pub struct Reported {
    pub val_loss: Option<f64>,
    pub wall_seconds: f64,
    pub train_seconds: Option<f64>,
    pub params: u64,
    pub device: String,
    pub peak_memory_bytes: Option<u64>,
    pub metrics: BTreeMap<String, f64>,
}

/// Python's `json` writes bare `NaN`, `Infinity` and `-Infinity`; quote them (outside
/// strings) so they parse, and the loss they stand for is judged, not the syntax.
fn quote_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else {
            let word = ["-Infinity", "Infinity", "NaN"]
                .into_iter()
                .find(|w| rest.starts_with(w));
            if let Some(w) = word {
                out.push('"');
                out.push_str(w);
                out.push('"');
                rest = &rest[w.len()..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Read `curve.jsonl`: every line must parse and end with a newline, steps must rise, and
/// tokens must be `step × tokens_per_step`.
pub fn read_curve(path: &Path, tokens_per_step: u64) -> Result<Vec<CurvePoint>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "the trainer wrote no learning curve (curve.jsonl)".into(),
        _ => format!(
            "cannot read the trainer's curve.jsonl: {}",
            crate::study::diagnostics::io_reason(&e)
        ),
    })?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(format!(
            "curve.jsonl is truncated: its last line ends without a newline ({} lines)",
            text.lines().count()
        ));
    }
    let mut curve: Vec<CurvePoint> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let p: CurveLine = serde_json::from_str(&quote_non_finite(line))
            .map_err(|e| format!("curve.jsonl line {}: {e}", i + 1))?;
        if let Some(prev) = curve.last()
            && p.step <= prev.step
        {
            return Err(format!(
                "curve.jsonl line {}: step {} after step {}: steps must rise",
                i + 1,
                p.step,
                prev.step
            ));
        }
        let Some(expected) = p.step.checked_mul(tokens_per_step) else {
            return Err(format!(
                "curve.jsonl line {}: step {} is beyond any run (× {tokens_per_step} tokens per \
                 step overflows)",
                i + 1,
                p.step
            ));
        };
        if p.tokens != expected {
            return Err(format!(
                "curve.jsonl line {}: {} tokens at step {}, the contract's {} per step make {}",
                i + 1,
                p.tokens,
                p.step,
                tokens_per_step,
                expected
            ));
        }
        if !p.lr.is_finite() || !p.wall_seconds.is_finite() {
            return Err(format!(
                "curve.jsonl line {}: lr and wall_seconds must be finite numbers",
                i + 1
            ));
        }
        curve.push(CurvePoint {
            step: p.step,
            tokens: p.tokens,
            train_loss: p.train_loss.value(),
            val_loss: p.val_loss.map(LossValue::value),
            lr: p.lr,
            wall_seconds: p.wall_seconds,
            metrics: p.metrics,
        });
    }
    Ok(curve)
}

/// Read `result.json`.
pub fn read_result(path: &Path) -> Result<Reported, String> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "the trainer wrote no result (result.json)".into(),
        _ => format!(
            "cannot read the trainer's result.json: {}",
            crate::study::diagnostics::io_reason(&e)
        ),
    })?;
    let r: ResultFile =
        serde_json::from_str(&quote_non_finite(&text)).map_err(|e| format!("result.json: {e}"))?;
    if !(r.wall_seconds.is_finite() && r.wall_seconds >= 0.0) {
        return Err(format!(
            "result.json: wall_seconds must be a time in seconds, found {}",
            r.wall_seconds
        ));
    }
    Ok(Reported {
        val_loss: r.val_loss.map(LossValue::value),
        wall_seconds: r.wall_seconds,
        train_seconds: r.train_seconds.filter(|t| t.is_finite() && *t >= 0.0),
        params: r.params,
        device: r.device,
        peak_memory_bytes: r.peak_memory_bytes,
        metrics: r.metrics,
    })
}

/// Why a trainer's report lacks what the study asked for: a metric in `wanted` missing from
/// the result or from an evaluation line of the curve, or a metric that is not finite.
pub fn missing_metrics(
    wanted: &[String],
    curve: &[CurvePoint],
    reported: &Reported,
) -> Option<String> {
    let bad = |m: &BTreeMap<String, f64>| {
        m.iter()
            .find(|(_, v)| !v.is_finite())
            .map(|(k, v)| (k.clone(), *v))
    };
    if let Some((name, v)) =
        bad(&reported.metrics).or_else(|| curve.iter().find_map(|p| bad(&p.metrics)))
    {
        return Some(format!(
            "the trainer reported metric `{name}` = {v}: not a finite number"
        ));
    }
    for name in wanted {
        if !reported.metrics.contains_key(name) {
            return Some(format!(
                "the study asks for metric `{name}` (`metrics:`), which the trainer did not \
                 report in result.json (`metrics`)"
            ));
        }
        if let Some(p) = curve
            .iter()
            .find(|p| p.val_loss.is_some() && !p.metrics.contains_key(name))
        {
            return Some(format!(
                "the study asks for metric `{name}` (`metrics:`), which the trainer did not \
                 report at its evaluation of step {} in curve.jsonl (`metrics`)",
                p.step
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = crate::testing::fresh_dir("contract");
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn python_non_finite_floats_parse_outside_strings_only() {
        assert_eq!(
            quote_non_finite(r#"{"a": NaN, "b": -Infinity, "c": "NaN x", "d": [Infinity]}"#),
            r#"{"a": "NaN", "b": "-Infinity", "c": "NaN x", "d": ["Infinity"]}"#
        );
        let path = write(
            "curve.jsonl",
            "{\"step\":1,\"tokens\":8,\"train_loss\":NaN,\"lr\":0.1,\"wall_seconds\":0}\n",
        );
        let curve = read_curve(&path, 8).unwrap();
        assert!(curve[0].train_loss.is_nan());
        assert_eq!(curve[0].val_loss, None);
    }

    #[test]
    fn bad_curves_fail_with_the_line() {
        let line = |step: u64, tokens: u64| {
            format!(
                "{{\"step\":{step},\"tokens\":{tokens},\"train_loss\":2.0,\"val_loss\":null,\"lr\":0.1,\"wall_seconds\":0.5}}"
            )
        };
        let ok = format!("{}\n{}\n", line(1, 8), line(2, 16));
        assert_eq!(read_curve(&write("c", &ok), 8).unwrap().len(), 2);
        let truncated = format!("{}\n{}", line(1, 8), &line(2, 16)[..20]);
        let err = read_curve(&write("c", &truncated), 8).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        let falling = format!("{}\n{}\n", line(2, 16), line(1, 8));
        let err = read_curve(&write("c", &falling), 8).unwrap_err();
        assert!(err.contains("line 2: step 1 after step 2"), "{err}");
        let err = read_curve(&write("c", &format!("{}\n", line(1, 9))), 8).unwrap_err();
        assert!(err.contains("line 1: 9 tokens at step 1"), "{err}");
        let err = read_curve(&write("c", "{\"step\":1}\n"), 8).unwrap_err();
        assert!(err.contains("line 1: missing field"), "{err}");
        let missing = crate::testing::fresh_dir("contract").join("curve.jsonl");
        assert!(
            read_curve(&missing, 8)
                .unwrap_err()
                .contains("no learning curve")
        );
    }

    #[test]
    fn results_need_their_fields() {
        let good = r#"{"val_loss": 2.5, "wall_seconds": 1.5, "params": 100, "device": "cpu"}"#;
        let r = read_result(&write("r", good)).unwrap();
        assert_eq!((r.val_loss, r.params), (Some(2.5), 100));
        let nan = r#"{"val_loss": NaN, "wall_seconds": 1.5, "params": 100, "device": "cpu"}"#;
        assert!(
            read_result(&write("r", nan))
                .unwrap()
                .val_loss
                .unwrap()
                .is_nan()
        );
        let err = read_result(&write("r", r#"{"val_loss": 2.5}"#)).unwrap_err();
        assert!(err.contains("missing field `wall_seconds`"), "{err}");
        let err = read_result(&write("r", "{\"val_loss\": 2.5, \"wall")).unwrap_err();
        assert!(err.starts_with("result.json: "), "{err}");
    }
}
