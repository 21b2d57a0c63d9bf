//! [`StudyFile`] → [`Study`]: fill defaults and check every constraint, collecting all
//! problems (not just the first) with their field paths.
//!
//! One file per part of the study: [`data`], [`model`] (shapes), [`sweep`] (training
//! hyper-parameters and the N×D or IsoFLOP sweep) and [`analysis`] (imports, fits, hold-out,
//! final run, report, checks).

mod analysis;
mod data;
mod execution;
mod measured;
mod metric;
mod model;
mod repeated;
mod results;
mod sweep;
mod tasks;
mod trainer;
mod transfer;
mod variants;

use std::path::{Path, PathBuf};

use super::diagnostics::{Diagnostic, Severity};
use super::file::{DataFile, IsoFlopFile, ModelFile, StudyFile, TrainFile};
use super::locate::PositionMap;
use super::units::{Count, Real};
use super::{STUDY_VERSION, Source, Study, Sweep, TrainingPlan};
use crate::data::DataSpec;

/// Longest context the trainer accepts.
pub const MAX_CONTEXT: u64 = 8192;
/// The most runs one study may plan (sizes × token counts or budgets × learning rates): far
/// beyond a scaling study (the largest published sweeps train a few thousand runs), and a
/// bound on what validating and planning hold in memory.
pub const MAX_RUNS: u64 = 20_000;
/// The most tokens one run may train: 10¹⁵, beyond any run scalebook can schedule, and far
/// from where token arithmetic in `u64` could overflow.
pub const MAX_TOKENS: u64 = 1_000_000_000_000_000;

pub use analysis::law_name;

/// Chart ids the report can draw (DESIGN.md "Report").
pub const CHART_IDS: [&str; 16] = [
    "loss_vs_params",
    "loss_vs_tokens",
    "loss_vs_compute",
    "isoflop",
    "learning_curves",
    "extrapolation",
    "residuals",
    "allocation",
    "cost",
    "frontier",
    "loss_vs_lr",
    "curve",
    "batch_size",
    "metric",
    "facts_recall",
    "accuracy",
];
/// Table ids the report can print.
pub const TABLE_IDS: [&str; 14] = [
    "runs",
    "fits",
    "laws",
    "learning_rate",
    "allocation",
    "holdout",
    "warnings",
    "checks",
    "final",
    "branches",
    "curve",
    "lr_transfer",
    "batch_size",
    "decisions",
];

/// Check a parsed study file; `Err` holds every error (and the warnings) in file order.
pub fn validate(
    file: StudyFile,
    path: &Path,
    sha256: String,
    positions: &PositionMap,
) -> Result<Study, Vec<Diagnostic>> {
    let dir = crate::files::folder_of(path).to_path_buf();
    let mut v = Validator {
        diags: Vec::new(),
        dir,
    };
    let study = v.study(file, path, sha256);
    let mut diags: Vec<Diagnostic> = v.diags.into_iter().map(|d| d.locate(positions)).collect();
    // File order reads best; errors whose position is unknown come last.
    diags.sort_by_key(|d| {
        d.position
            .map(|p| (p.line, p.column))
            .unwrap_or((usize::MAX, 0))
    });
    match study {
        Some(mut study) if !diags.iter().any(|d| d.severity == Severity::Error) => {
            study.warnings = diags;
            Ok(study)
        }
        Some(_) => Err(diags),
        None => {
            if !diags.iter().any(|d| d.severity == Severity::Error) {
                diags.push(Diagnostic::error("", "the study is incomplete"));
            }
            Err(diags)
        }
    }
}

struct Validator {
    diags: Vec<Diagnostic>,
    /// Directory of the study file; data paths are relative to it.
    dir: PathBuf,
}

impl Validator {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.diags.push(Diagnostic::error(path, message));
    }

    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.diags.push(Diagnostic::warning(path, message));
    }

    fn error_count(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// A count in `lo..=hi`, or `default` when absent.
    fn count(&mut self, path: &str, value: Option<Count>, default: u64, lo: u64, hi: u64) -> u64 {
        match value {
            None => default,
            Some(Count(v)) if v < lo || v > hi => {
                let range = if hi == u64::MAX {
                    format!("at least {lo}")
                } else {
                    format!("between {lo} and {hi}")
                };
                self.error(path, format!("must be {range}, found {v}"));
                default
            }
            Some(Count(v)) => v,
        }
    }

    /// A real checked by `ok` (which describes the allowed range), or `default`.
    fn real(
        &mut self,
        path: &str,
        value: Option<Real>,
        default: f64,
        range: &str,
        ok: impl Fn(f64) -> bool,
    ) -> f64 {
        match value {
            None => default,
            Some(Real(v)) if !ok(v) => {
                self.error(path, format!("must be {range}, found {v}"));
                default
            }
            Some(Real(v)) => v,
        }
    }

    /// Report a key that does not apply in this context.
    fn not_here<T>(&mut self, path: &str, value: &Option<T>, why: &str) {
        if value.is_some() {
            self.error(path, format!("does not apply {why}; remove it"));
        }
    }

    fn study(&mut self, f: StudyFile, path: &Path, sha256: String) -> Option<Study> {
        if f.version != STUDY_VERSION {
            self.error(
                "version",
                format!(
                    "unsupported study-file version {}; this scalebook reads version {STUDY_VERSION}",
                    f.version
                ),
            );
        }
        self.name(&f.name);
        let seed = f.seed.unwrap_or(0);

        let source = match f.results {
            Some(results) => {
                let why = "when `results:` imports runs (nothing is trained)";
                self.not_here("data", &f.data, why);
                self.not_here("model", &f.model, why);
                self.not_here("tokens", &f.tokens, why);
                self.not_here("isoflop", &f.isoflop, why);
                self.not_here("train", &f.train, why);
                self.not_here("final", &f.final_run, why);
                self.not_here("trainer", &f.trainer, why);
                self.not_here(
                    "metrics",
                    &f.metrics,
                    "when `results:` imports runs (name their columns in `results.metrics`)",
                );
                self.not_here("tasks", &f.tasks, "when `results:` imports runs");
                self.results(&results).map(|r| Source::Import(Box::new(r)))
            }
            None => self
                .training(f.data, f.model, f.tokens, f.isoflop, f.train)
                .map(|mut plan| {
                    plan.external = self.trainer(f.trainer.as_ref());
                    if let Some(external) = &plan.external {
                        plan.producer = external.producer();
                        if plan.branching.is_some() {
                            self.error(
                                "train.branches",
                                "trunks are shared only by the built-in engine: an external \
                                 trainer cannot hand its model and optimizer state to a branch; \
                                 remove `branches` (each point then trains on its own)",
                            );
                        }
                    }
                    plan.metrics = self.measured(f.metrics.as_deref(), &plan);
                    plan.tasks = self.tasks(f.tasks.as_deref(), &plan);
                    Source::Train(Box::new(plan))
                }),
        };
        let fits = self.fits(f.fits, source.as_ref());
        let holdout = f
            .holdout
            .as_ref()
            .and_then(|h| self.holdout(h, source.as_ref()));
        let rollout = f.holdout.as_ref().is_some_and(|h| h.rollout.is_some());
        let leave_one_out_tokens = f
            .holdout
            .as_ref()
            .is_some_and(|h| h.leave_one_out.is_some());
        let final_run = f
            .final_run
            .as_ref()
            .and_then(|fr| self.final_run(fr, &fits, source.as_ref()));
        let sections = self.report(f.report.as_ref());
        let checks = self.checks(f.checks.unwrap_or_default());
        let store = f.store.as_deref().and_then(|s| self.store(s));
        let slurm = self.execution(f.execution.as_ref());
        let mut source = source;
        let variants = self.variants(f.variants.as_ref(), source.as_mut());

        if self.error_count() > 0 {
            return None;
        }
        Some(Study {
            path: path.to_path_buf(),
            sha256,
            title: f.title.unwrap_or_else(|| f.name.clone()),
            name: f.name,
            description: f.description,
            seed,
            source: source?,
            fits,
            leave_one_out_tokens,
            holdout,
            rollout,
            final_run,
            sections,
            checks,
            store,
            slurm,
            warnings: Vec::new(),
            variants,
        })
    }

    /// A study's own store: a relative folder (it travels with the study file).
    fn store(&mut self, path: &str) -> Option<PathBuf> {
        let rel = Path::new(path);
        if path.trim().is_empty() || rel.is_absolute() {
            self.error(
                "store",
                "must be a folder relative to the study file (the study's results travel with it)",
            );
            return None;
        }
        if let Some(c) = path.chars().find(|c| c.is_control()) {
            self.error(
                "store",
                format!(
                    "`{}` holds the control character U+{:04X}: name a plain folder",
                    path.escape_debug(),
                    c as u32
                ),
            );
            return None;
        }
        if self.dir.join(rel).is_file() {
            self.error("store", format!("`{path}` is a file, not a folder"));
            return None;
        }
        Some(self.dir.join(rel))
    }

    fn name(&mut self, name: &str) {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !ok {
            self.error(
                "name",
                format!(
                    "`{name}` is not a valid study name: use 1–64 lower-case letters, digits, `-` \
                     or `_`, starting with a letter or digit (it names folders and the book chapter)"
                ),
            );
        }
    }

    fn training(
        &mut self,
        data: Option<DataFile>,
        model: Option<ModelFile>,
        tokens: Option<Vec<Count>>,
        isoflop: Option<IsoFlopFile>,
        train: Option<TrainFile>,
    ) -> Option<TrainingPlan> {
        let data = self.data(data.as_ref());
        let Some(model_file) = model else {
            self.error(
                "model",
                "missing required section (or give `results:` to fit imported runs)",
            );
            return None;
        };
        let train_file = train;
        let (mut train, learning_rates, batch_sizes) =
            self.train(train_file.as_ref(), model_file.context.0);
        let warmup_tokens = self.warmup_tokens(train_file.as_ref());
        if warmup_tokens.is_some() {
            train.warmup = 0.0;
        }
        let branching = self.branching(train_file.as_ref(), &train);
        let model = self.model(&model_file, data.as_ref().map(DataSpec::vocab))?;
        let sweep = match (tokens, isoflop) {
            (Some(_), Some(_)) => {
                self.error(
                    "isoflop",
                    "give either `tokens:` (an N×D grid) or `isoflop:`, not both",
                );
                None
            }
            (None, None) => {
                self.error(
                    "tokens",
                    "missing: give `tokens:` (an N×D grid) or `isoflop: { budgets: [...] }`",
                );
                None
            }
            (Some(tokens), None) => self.grid(&tokens, &batch_sizes, model.context),
            (None, Some(iso)) => self.isoflop(&iso, &model, data.as_ref(), &batch_sizes),
        };
        let plan = TrainingPlan {
            data: data?,
            model,
            sweep: sweep?,
            train,
            learning_rates,
            batch_sizes,
            producer: crate::study::plan::TRAINER_VERSION.to_string(),
            external: None,
            shared_warmup: branching.is_some(),
            branching,
            warmup_tokens,
            transfer: None,
            metrics: Vec::new(),
            tasks: Vec::new(),
        };
        // Checked before anything expands the plan: its size bounds what validating and
        // planning hold in memory.
        let points = match &plan.sweep {
            Sweep::Grid { tokens } => tokens.len(),
            Sweep::IsoFlop { budgets, .. } => budgets.len(),
        };
        let runs = (plan.model.sizes.len() as u128)
            * points as u128
            * plan.learning_rates.len().max(1) as u128
            * plan.batch_sizes.len().max(1) as u128;
        if runs > MAX_RUNS as u128 {
            self.error(
                "model.sizes",
                format!(
                    "{} sizes × {points} {} × {} learning rates{} make {runs} runs, more than \
                     the {MAX_RUNS} one study may plan: split the sweep into several studies",
                    plan.model.sizes.len(),
                    if matches!(plan.sweep, Sweep::Grid { .. }) {
                        "token counts"
                    } else {
                        "budgets"
                    },
                    plan.learning_rates.len().max(1),
                    match plan.batch_sizes.len() {
                        0 | 1 => String::new(),
                        n => format!(" × {n} batch sizes"),
                    }
                ),
            );
            return None;
        }
        if plan.batch_sizes.len() > 1 && plan.branching.is_some() {
            self.error(
                "train.branches",
                "a trunk trains at one batch size: remove `branches` to sweep `train.batch` \
                 (each point then trains on its own at every batch size)",
            );
            return None;
        }
        if plan.branching.is_some() || plan.warmup_tokens.is_some() {
            self.branch_points(&plan);
        }
        let mut plan = plan;
        if let Some(f) = train_file.as_ref().and_then(|t| t.lr_transfer.as_ref()) {
            plan.transfer = self.lr_transfer(f, &plan);
        }
        Some(plan)
    }
}
