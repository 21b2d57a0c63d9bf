//! The trainer contract, version 1: what scalebook hands an external trainer (the [`Job`]
//! JSON and two token files). What it reads back (`curve.jsonl` and `result.json`) is
//! [`super::reported`].

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::data::DataIdentity;
use crate::model::{GptConfig, Multipliers, ParamCounts, Parametrization};
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
