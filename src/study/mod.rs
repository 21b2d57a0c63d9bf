//! Study files: parse YAML ([`parse`]), check it ([`validate`]) into a typed [`Study`], and
//! expand its sweep into run specs ([`plan`]).
//!
//! The serde file types ([`file`]) mirror the YAML; the typed values here are what the rest
//! of scalebook consumes, with every default filled in and every constraint checked.

pub mod branches;
pub mod diagnostics;
pub mod execution;
pub mod file;
pub mod final_run;
pub mod isoflop;
pub mod locate;
pub mod metrics;
pub mod naming;
pub mod parse;
pub mod plan;
pub mod tasks;
pub mod trainer;
pub mod transfer;
pub mod units;
pub mod validate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::DataSpec;
use crate::data::identity::hex;
use crate::fit::constrained::Limits;
use crate::fit::cost::CostLaw;
pub use diagnostics::{Diagnostic, Severity, StudyError};
pub use file::{
    BootstrapStarts, GridKind, IsoFlopSizes, LawKind, ParamsConvention, PowerForm, PowerX,
};
pub use plan::RunSpec;

/// The only study-file version this build reads.
pub const STUDY_VERSION: u32 = 1;

/// A validated study.
#[derive(Debug, Clone)]
pub struct Study {
    /// The study file as given on the command line.
    pub path: PathBuf,
    /// sha256 of the study file's bytes (for the reproducibility appendix).
    pub sha256: String,
    pub name: String,
    pub title: String,
    pub description: Option<String>,
    pub seed: u64,
    /// Train a sweep, or import results.
    pub source: Source,
    pub fits: Vec<FitSpec>,
    pub holdout: Option<Holdout>,
    /// `holdout.rollout: sizes`: the rollout audit over model sizes.
    pub rollout: bool,
    /// `holdout.leave_one_out: tokens`: each token count predicted by the laws fitted
    /// without it.
    pub leave_one_out_tokens: bool,
    pub final_run: Option<FinalSpec>,
    /// Report sections in order; empty means the default sections.
    pub sections: Vec<Section>,
    pub checks: Vec<String>,
    /// The study's own (published) run store, resolved against the study file's folder.
    pub store: Option<PathBuf>,
    /// Options of the Slurm executor (`execution.slurm`; not part of any run's identity).
    pub slurm: execution::SlurmOptions,
    /// Problems that do not stop the study (printed by `validate` and `plan`).
    pub warnings: Vec<Diagnostic>,
    /// `variants:`: the recipes of imported runs, compared at a target scale.
    pub variants: Option<crate::fit::options::VariantsRequest>,
}

/// Where a study's results come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Train every run of a sweep.
    Train(Box<TrainingPlan>),
    /// Fit results from a table.
    Import(Box<ResultsSpec>),
}

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainingPlan {
    pub data: DataSpec,
    pub model: ModelSpec,
    pub sweep: Sweep,
    /// Hyper-parameters of every run; `train.lr` is the first of `learning_rates`.
    pub train: TrainSpec,
    /// The learning rates every point is trained at, ascending (one without a sweep).
    pub learning_rates: Vec<f64>,
    /// The batch sizes every point is trained at (with every learning rate), ascending (one
    /// without a sweep); `train.batch` is the first.
    pub batch_sizes: Vec<u64>,
    /// What produces the runs' numbers, part of every run's identity: the built-in engine
    /// ([`plan::TRAINER_VERSION`]) unless a command names another producer (the mock
    /// executor, see [`Study::produced_by`]). Never where or how a run trains.
    pub producer: String,
    /// The user's own trainer, when the study names one (`trainer:`); `None` trains with
    /// the built-in engine.
    pub external: Option<trainer::ExternalTrainer>,
    /// WSD trunks shared by every token count (`train.branches`), with the schedule of the
    /// independent runs to compare against (`train.compare`).
    pub branching: Option<Branching>,
    /// Every run of a size warms up as long as the size's longest run (branches, and the
    /// independent runs compared with them), not for a fraction of its own steps.
    pub shared_warmup: bool,
    /// `train.warmup_tokens`: every run warms up over this many tokens (whole steps), not a
    /// fraction of its steps (`train.warmup` is then 0).
    pub warmup_tokens: Option<u64>,
    /// `train.lr_transfer`: the learning rate is swept at some sizes only; every other size
    /// trains at the one the sweep gives it (see [`transfer`]).
    pub transfer: Option<LrTransfer>,
    /// `metrics:`: what every run measures at each evaluation beside the loss, by name
    /// (sorted, no repeats): the built-in engine's [`metrics::Metric`]s, or the names an
    /// external trainer reports; part of the runs' identity when not empty.
    pub metrics: Vec<String>,
    /// `tasks:`: the task files every evaluation scores (built-in engine: by the forward
    /// pass; external trainers: through the job's token files).
    pub tasks: Vec<tasks::TaskSpec>,
}

/// With several batch sizes, a token count may move this far (relative) to become a whole
/// number of steps of every one of them.
pub const BATCH_ROUNDING: f64 = 0.02;

/// Tokens of one step of every batch size: their least common multiple × `context` (one
/// batch size: batch × context).
pub fn step_unit(batches: &[u64], context: u64) -> u64 {
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    batches
        .iter()
        .fold(1u64, |acc, &b| {
            let b = b.max(1);
            (acc / gcd(acc, b)).saturating_mul(b)
        })
        .saturating_mul(context)
}

impl TrainingPlan {
    /// Whether some point is trained at several hyper-parameters (learning rates or batch
    /// sizes) and the fits take the best run per point.
    pub fn sweeps(&self) -> bool {
        self.learning_rates.len() > 1 || self.batch_sizes.len() > 1
    }

    /// Tokens per step unit: every point's tokens are a multiple of it ([`step_unit`]).
    pub fn step_tokens(&self) -> u64 {
        step_unit(&self.batch_sizes, self.model.context)
    }
}

/// Which sizes sweep the learning rate and how the others get theirs.
#[derive(Debug, Clone, PartialEq)]
pub struct LrTransfer {
    /// Indices into `ModelSpec::sizes` trained at every swept learning rate; the decision
    /// reads these alone.
    pub swept: Vec<usize>,
    /// Transferred sizes also swept (a check of the transfer).
    pub checked: Vec<usize>,
    pub rule: TransferRule,
}

/// How a transferred size's learning rate is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferRule {
    /// The swept sizes' optimum at the same token count (µP carries it across widths).
    Mup,
    /// The fitted η*(N, D) = c·N^a·D^b of the swept points.
    Law,
}

impl LrTransfer {
    /// Whether size `index` is trained at every swept learning rate.
    pub fn sweeps(&self, index: usize) -> bool {
        self.swept.contains(&index) || self.checked.contains(&index)
    }
}

/// How a study shares trunks (see [`branches`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Branching {
    /// The schedule every point is also trained with independently, for comparison.
    pub compare: Option<Schedule>,
}

/// Model family and sizes, ordered by non-embedding parameters.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub context: u64,
    pub tie_embeddings: bool,
    /// `model.parametrization` (with `model.base_width` under µP).
    pub parametrization: crate::model::Parametrization,
    pub sizes: Vec<ModelSize>,
}

/// One model shape with its display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSize {
    pub layers: u64,
    pub d_model: u64,
    pub heads: u64,
    pub name: String,
}

/// How the sizes are paired with token counts.
#[derive(Debug, Clone)]
pub enum Sweep {
    /// Every size at every token count.
    Grid { tokens: Vec<u64> },
    /// Every budget C, with D = C / (training FLOPs per token) for each size.
    IsoFlop {
        budgets: Vec<f64>,
        sizes: IsoFlopSizes,
    },
}

/// Learning-rate schedule, with only the knobs that apply to it (so an unused knob never
/// changes a run's identity).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    Cosine { min_lr_ratio: f64 },
    Wsd { decay: f64, min_lr_ratio: f64 },
    Constant,
}

/// Training hyper-parameters shared by every run; all of it is part of the run identity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    pub batch: u64,
    pub lr: f64,
    pub schedule: Schedule,
    pub warmup: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub grad_clip: f64,
    pub eval_every: u64,
    pub eval_tokens: u64,
}

/// One law to fit, with its options: the fitting code's own type (`fit/` knows no
/// study-file types), which the study file's `fits:` validates into.
pub use crate::fit::options::LawRequest as FitSpec;

impl FitSpec {
    pub fn law(&self) -> LawKind {
        match self {
            FitSpec::Chinchilla { .. } => LawKind::Chinchilla,
            FitSpec::Isoflop { .. } => LawKind::Isoflop,
            FitSpec::Frontier { .. } => LawKind::Frontier,
            FitSpec::Power { .. } => LawKind::Power,
            FitSpec::Cost => LawKind::Cost,
            FitSpec::Curve(_) => LawKind::Curve,
            FitSpec::Overtrain { .. } => LawKind::Overtrain,
            FitSpec::DataConstrained { .. } => LawKind::DataConstrained,
            FitSpec::Metric(_) => LawKind::Metric,
        }
    }
}

/// Which points a hold-out check leaves out (the fitting code's own option).
pub use crate::fit::options::Holdout;

/// The final compute-optimal run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinalSpec {
    pub budget: f64,
    pub law: LawKind,
    /// With a batch sweep: the batch size the final run's neighbour trains at.
    pub compare_batch: Option<u64>,
    /// Lifetime inference tokens (0: the budget is training alone).
    pub inference_tokens: f64,
    pub max_params: Option<f64>,
    pub max_memory_bytes: Option<f64>,
    pub max_wall_seconds: Option<f64>,
    /// The unique-token cap the data-constrained allocation of the budget answers for.
    pub unique_tokens: Option<f64>,
}

impl FinalSpec {
    /// Whether anything beyond the FLOP budget places the final run.
    pub fn limited(&self) -> bool {
        self.inference_tokens > 0.0
            || self.max_params.is_some()
            || self.max_memory_bytes.is_some()
            || self.max_wall_seconds.is_some()
    }

    /// The limits that place the final run, with the fitted cost laws the memory and
    /// wall-time limits go through; `Err(why)` when a limit's law could not be fitted.
    pub fn limits(&self, cost: Option<&crate::fit::report::CostReport>) -> Result<Limits, String> {
        let through = |limit: Option<f64>, law: Option<CostLaw>, key: &str, what: &str| {
            limit
                .map(|l| {
                    law.map(|m| (m, l)).ok_or_else(|| {
                        format!(
                            "`final.{key}` needs the {what} law, which could not be fitted (the \
                             runs record no {what})"
                        )
                    })
                })
                .transpose()
        };
        Ok(Limits {
            inference_tokens: self.inference_tokens,
            max_params: self.max_params,
            memory: through(
                self.max_memory_bytes,
                cost.and_then(|c| c.peak_rss_bytes),
                "max_memory_bytes",
                "peak memory",
            )?,
            wall: through(
                self.max_wall_seconds,
                cost.and_then(|c| c.wall_seconds),
                "max_wall_seconds",
                "wall time",
            )?,
        })
    }
}

/// One report section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Section {
    Text(String),
    Chart(String),
    Table(String),
}

/// Imported results: a table of (N, D or C, loss).
#[derive(Debug, Clone, PartialEq)]
pub struct ResultsSpec {
    pub path: PathBuf,
    pub params_column: String,
    pub x_column: ResultsX,
    pub loss_column: String,
    pub drop_highest_loss: u64,
    /// `results.where`: each column and the values a row's cell may equal (one of them),
    /// compared as text.
    pub filter: Vec<(String, Vec<String>)>,
    /// Where each row's unique tokens U_D come from, when the runs repeat data.
    pub unique: Option<ResultsUnique>,
    /// The column naming each run, if any.
    pub name_column: Option<String>,
    /// `results.join`: a second table and the key column both share.
    pub join: Option<(PathBuf, String)>,
    /// `results.metrics`: each metric's name and the column holding it (in the results
    /// table, else the joined one).
    pub metrics: Vec<(String, String)>,
    /// `variants.column`: the column naming each run's recipe, when the study compares them.
    pub variant_column: Option<String>,
}

/// `results.columns.unique_tokens` (U_D itself) or `results.columns.epochs` (U_D = D / epochs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultsUnique {
    Tokens(String),
    Epochs(String),
}

/// Whether imported rows give tokens directly or compute (D = C / 6N).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultsX {
    Tokens(String),
    Flops(String),
}

impl Study {
    /// The same study with its runs produced by `producer` (their keys change with it).
    pub fn produced_by(mut self, producer: String) -> Study {
        if let Source::Train(plan) = &mut self.source {
            plan.producer = producer;
            // Another producer (the mock) makes the numbers: the external command runs not.
            plan.external = None;
        }
        self
    }

    /// Whether the study's numbers come from the mock executor rather than training.
    pub fn is_mock(&self) -> bool {
        self.training()
            .is_some_and(|t| plan::is_mock_producer(&t.producer))
    }

    /// The training plan, when the study trains.
    pub fn training(&self) -> Option<&TrainingPlan> {
        match &self.source {
            Source::Train(plan) => Some(plan),
            Source::Import(_) => None,
        }
    }
}

/// Read, parse and validate a study file.
pub fn load(path: &Path) -> Result<Study, StudyError> {
    let bytes = std::fs::read(path).map_err(|source| StudyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    from_bytes(&bytes, path)
}

/// Parse and validate study-file bytes; `path` names the file in messages and anchors
/// relative data paths.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Study, StudyError> {
    let invalid = |diagnostic: Diagnostic| StudyError::Invalid {
        path: path.to_path_buf(),
        diagnostics: vec![diagnostic],
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let before = &bytes[..offset];
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let mut diagnostic = Diagnostic::error(
            "",
            format!("the study file is not valid UTF-8 (byte offset {offset})"),
        );
        diagnostic.position = Some(locate::Position {
            line: before.iter().filter(|b| **b == b'\n').count() + 1,
            column: offset - line_start + 1,
        });
        invalid(diagnostic)
    })?;
    let positions = locate::PositionMap::build(text);
    let file = parse::parse(text, &positions).map_err(invalid)?;
    let sha256 = hex(&Sha256::digest(bytes));
    validate::validate(file, path, sha256, &positions).map_err(|diagnostics| StudyError::Invalid {
        path: path.to_path_buf(),
        diagnostics,
    })
}
