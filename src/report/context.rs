//! What a report is made of, read from the collected DataFrames, the fits and the final
//! run, and the documented template context (`study`, `data`, `runs`, `fits`, `holdout`,
//! `final`, `manifest`) that `text:` sections and `checks:` see.

use polars::prelude::*;
use serde::Serialize;

use super::manifest::Manifest;
use crate::fit::chinchilla::Law;
use crate::fit::suite::{FitReport, HoldoutReport};
use crate::record::{RunResult, RunStatus};
use crate::study::final_run::FinalPlan;
use crate::study::{ParamsConvention, Study};

/// One run as the report shows it (a row of `runs.parquet`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub key: String,
    pub name: String,
    pub size: String,
    /// `ok`, `diverged` or `failed`.
    pub status: String,
    pub reason: Option<String>,
    pub layers: u64,
    pub d_model: u64,
    pub heads: u64,
    pub params_total: u64,
    pub params_non_embedding: u64,
    pub tokens: u64,
    pub flops: f64,
    pub budget: Option<f64>,
    /// Final validation loss (nats/token).
    pub loss: Option<f64>,
    pub wall_seconds: f64,
    /// The wall time trained on its own (a branch's own time covers only the steps it
    /// trained; see `RunResult::independent_wall_seconds`).
    pub independent_wall_seconds: f64,
    pub tokens_per_second: f64,
    pub peak_rss_bytes: Option<u64>,
    /// Loss spikes the run recovered from (absent for mock and older runs).
    pub spikes: Option<u64>,
    /// The largest spike: its step and its peak over the lowest moving mean before it.
    pub largest_spike_step: Option<u64>,
    pub largest_spike_ratio: Option<f64>,
    /// Peak learning rate.
    pub lr: f64,
    /// Batch size (sequences; 0 in frames written before it was recorded).
    pub batch: u64,
    /// The (size, tokens) point (the name without a learning-rate suffix).
    pub point: String,
    /// Whether the fits use this run: always, except the runs of a learning-rate sweep that
    /// are not their point's best.
    pub selected: bool,
    /// The unique tokens its D were drawn from (U_D), where the run knows them.
    pub unique_tokens: Option<u64>,
    /// The metrics the run recorded at its end (the study's `metrics:`, or imported ones).
    pub metrics: std::collections::BTreeMap<String, f64>,
}

impl RunRow {
    /// N in a fit's convention.
    pub fn n(&self, params: ParamsConvention) -> f64 {
        match params {
            ParamsConvention::Total => self.params_total as f64,
            ParamsConvention::NonEmbedding => self.params_non_embedding as f64,
        }
    }

    pub fn ok_loss(&self) -> Option<f64> {
        (self.status == "ok").then_some(self.loss).flatten()
    }
}

/// One run's learning curve (validation evaluations only).
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub key: String,
    /// (tokens so far, validation loss).
    pub points: Vec<(f64, f64)>,
}

fn strs(df: &DataFrame, name: &str) -> PolarsResult<Vec<String>> {
    let ca = df.column(name)?.str()?.clone();
    Ok((0..ca.len())
        .map(|i| ca.get(i).unwrap_or_default().to_string())
        .collect())
}

fn opt_strs(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<String>>> {
    let ca = df.column(name)?.str()?.clone();
    Ok((0..ca.len())
        .map(|i| ca.get(i).map(str::to_string))
        .collect())
}

fn u64s(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<u64>>> {
    let col = df.column(name)?.cast(&DataType::UInt64)?;
    let ca = col.u64()?;
    Ok((0..ca.len()).map(|i| ca.get(i)).collect())
}

fn f64s(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<f64>>> {
    let col = df.column(name)?.cast(&DataType::Float64)?;
    let ca = col.f64()?;
    Ok((0..ca.len()).map(|i| ca.get(i)).collect())
}

/// The runs table as rows, in the frame's (plan) order.
pub fn run_rows(runs: &DataFrame) -> PolarsResult<Vec<RunRow>> {
    let key = strs(runs, "key")?;
    let name = strs(runs, "name")?;
    let size = strs(runs, "size_name")?;
    let status = strs(runs, "status")?;
    let reason = opt_strs(runs, "reason")?;
    let layers = u64s(runs, "layers")?;
    let d_model = u64s(runs, "d_model")?;
    let heads = u64s(runs, "heads")?;
    let total = u64s(runs, "params_total")?;
    let non_emb = u64s(runs, "params_non_embedding")?;
    let tokens = u64s(runs, "tokens")?;
    let flops = f64s(runs, "flops")?;
    let budget = f64s(runs, "budget")?;
    let loss = f64s(runs, "val_loss")?;
    let wall = f64s(runs, "wall_seconds")?;
    let tps = f64s(runs, "tokens_per_second")?;
    let rss = u64s(runs, "peak_rss_bytes")?;
    // Columns added after the first release: absent in older frames.
    let newer = |name: &str| runs.get_column_names().iter().any(|c| c.as_str() == name);
    let none = vec![None; runs.height()];
    let batch = if newer("batch") {
        u64s(runs, "batch")?
    } else {
        none.clone()
    };
    let lr = if newer("lr") {
        f64s(runs, "lr")?
    } else {
        vec![None; runs.height()]
    };
    let point = if newer("point") {
        strs(runs, "point")?
    } else {
        name.clone()
    };
    let spikes = if newer("spikes") {
        u64s(runs, "spikes")?
    } else {
        none.clone()
    };
    let spike_step = if newer("largest_spike_step") {
        u64s(runs, "largest_spike_step")?
    } else {
        none
    };
    let alone = if newer("independent_wall_seconds") {
        f64s(runs, "independent_wall_seconds")?
    } else {
        wall.clone()
    };
    let spike_ratio = if newer("largest_spike_ratio") {
        f64s(runs, "largest_spike_ratio")?
    } else {
        vec![None; runs.height()]
    };
    let unique = if newer("unique_tokens") {
        u64s(runs, "unique_tokens")?
    } else {
        vec![None; runs.height()]
    };
    let mut metrics = vec![std::collections::BTreeMap::new(); runs.height()];
    for column in runs.get_column_names() {
        if crate::study::metrics::is_recorded(column.as_str()) {
            for (row, value) in metrics.iter_mut().zip(f64s(runs, column.as_str())?) {
                if let Some(v) = value {
                    row.insert(column.to_string(), v);
                }
            }
        }
    }
    Ok((0..runs.height())
        .map(|i| RunRow {
            key: key[i].clone(),
            name: name[i].clone(),
            size: size[i].clone(),
            status: status[i].clone(),
            reason: reason[i].clone(),
            layers: layers[i].unwrap_or(0),
            d_model: d_model[i].unwrap_or(0),
            heads: heads[i].unwrap_or(0),
            params_total: total[i].unwrap_or(0),
            params_non_embedding: non_emb[i].unwrap_or(0),
            tokens: tokens[i].unwrap_or(0),
            flops: flops[i].unwrap_or(f64::NAN),
            budget: budget[i],
            loss: loss[i],
            wall_seconds: wall[i].unwrap_or(0.0),
            independent_wall_seconds: alone[i].or(wall[i]).unwrap_or(0.0),
            tokens_per_second: tps[i].unwrap_or(0.0),
            peak_rss_bytes: rss[i],
            spikes: spikes[i],
            largest_spike_step: spike_step[i],
            largest_spike_ratio: spike_ratio[i],
            lr: lr[i].unwrap_or(f64::NAN),
            batch: batch[i].unwrap_or(0),
            point: point[i].clone(),
            selected: true,
            unique_tokens: unique[i],
            metrics: std::mem::take(&mut metrics[i]),
        })
        .collect())
}

/// Learning curves from the curves frame, one per key, in first-seen order.
pub fn curves(frame: &DataFrame) -> PolarsResult<Vec<Curve>> {
    let key = strs(frame, "key")?;
    let tokens = f64s(frame, "tokens")?;
    let val = f64s(frame, "val_loss")?;
    let mut out: Vec<Curve> = Vec::new();
    for i in 0..frame.height() {
        let (Some(t), Some(v)) = (tokens[i], val[i]) else {
            continue;
        };
        if !(t > 0.0 && v.is_finite()) {
            continue;
        }
        match out.last_mut() {
            Some(c) if c.key == key[i] => c.points.push((t, v)),
            _ => out.push(Curve {
                key: key[i].clone(),
                points: vec![(t, v)],
            }),
        }
    }
    Ok(out)
}

/// The study as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct StudyCtx {
    pub name: String,
    pub title: String,
    pub description: Option<String>,
    pub seed: u64,
    pub file: String,
    pub sha256: String,
}

/// The data as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct DataCtx {
    /// `synthetic`, `text`, `tokens` or `imported`.
    pub source: String,
    pub description: String,
    pub vocab: Option<u64>,
    /// Entropy rate of the synthetic language (nats/token) and its standard error.
    pub entropy: Option<f64>,
    pub entropy_stderr: Option<f64>,
    /// The validation set's own floor: the true mean −ln p of its targets (synthetic data),
    /// the loss a perfect model scores on it — what the runs' losses, and so E, approach.
    pub val_entropy: Option<f64>,
}

/// One trained model of the final comparison.
#[derive(Debug, Clone, Serialize)]
pub struct FinalModel {
    pub name: String,
    pub key: String,
    pub layers: u64,
    pub d_model: u64,
    pub heads: u64,
    /// N in the fit's convention.
    pub params: f64,
    pub params_total: u64,
    pub tokens: u64,
    pub flops: f64,
    /// `ok`, `diverged`, `failed`, or `missing` (not trained yet).
    pub status: String,
    pub measured: Option<f64>,
    pub predicted: f64,
    /// The interval one run's loss is predicted to fall in: the law's band widened by the
    /// fitted runs' scatter about it ([`crate::fit::prediction`]).
    pub predicted_ci: Option<[f64; 2]>,
    /// The law's own band: where its expected loss lies (the bootstrap's percentiles).
    pub law_ci: Option<[f64; 2]>,
    pub wall_seconds: Option<f64>,
    pub wall_forecast: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    pub rss_forecast: Option<f64>,
    /// Peak learning rate it trains at.
    pub lr: f64,
    /// Batch size (sequences).
    pub batch: u64,
    /// The metrics it recorded (the study's `metrics:`).
    pub metrics: std::collections::BTreeMap<String, f64>,
}

/// The final compute-optimal run against the law's prediction and the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct FinalCtx {
    pub budget: f64,
    pub law: String,
    pub n_opt: f64,
    pub d_opt: f64,
    pub n_opt_ci: Option<[f64; 2]>,
    pub d_opt_ci: Option<[f64; 2]>,
    pub run: FinalModel,
    pub baseline: FinalModel,
    /// With a batch sweep: the final run's shape and tokens at the comparison batch size.
    pub neighbour: Option<FinalModel>,
    /// The neighbour's loss − the final run's (positive: the laws' batch size won).
    pub batch_gain: Option<f64>,
    /// The final run's batch size comes from the fitted B*(D).
    pub batch_from_law: bool,
    /// |predicted − measured| / measured of the final run.
    pub rel_error: Option<f64>,
    /// Whether the measured loss lies inside the interval predicted for one run
    /// (`run.predicted_ci`).
    pub within_ci: Option<bool>,
    /// Baseline loss − final loss (nats/token; positive means the optimum is better).
    pub gain: Option<f64>,
    pub gain_rel: Option<f64>,
    /// The final run and the baseline train at the fitted η*(N, D).
    pub lr_from_law: bool,
    /// With `final:` limits: the optimum under them (`budget` is then its training share).
    pub limits: Option<crate::fit::constrained::LimitedOptimum>,
    /// With `final.law: auto`: why `law` was chosen.
    pub chosen_by: Option<String>,
}

/// Percentile interval of `f` over bootstrap laws.
pub fn band(laws: &[Law], confidence: f64, f: impl Fn(&Law) -> f64) -> Option<[f64; 2]> {
    let mut values: Vec<f64> = laws.iter().map(f).collect();
    crate::fit::bootstrap::percentile_interval(&mut values, confidence).map(|i| [i.lo, i.hi])
}

fn final_model(
    spec: &crate::study::RunSpec,
    record: Option<&RunResult>,
    plan: &FinalPlan,
    fits: &FitReport,
) -> FinalModel {
    // A final run placed by a reduced law is predicted by that law (it has no bootstrap);
    // one placed by the pinned-E law, by that law and its bootstrap.
    let c = fits.chinchilla.as_ref();
    let n = plan.n(spec);
    let d = spec.tokens() as f64;
    let law = match &plan.reduced {
        Some((_, law)) => Some(*law),
        None => c.map(|c| c.law()),
    };
    let bootstrap = match plan.reduced.as_ref().map(|r| r.0.as_str()) {
        None => c.map(|c| {
            let k = crate::fit::chinchilla::PARAMETERS;
            (&c.bootstrap_laws, &c.residuals, k, c.confidence)
        }),
        Some("pinned_e") => c.and_then(|c| c.pinned.as_ref()).map(|p| {
            let k = crate::fit::pinned::PARAMETERS;
            (&p.bootstrap_laws, &p.residuals, k, p.confidence)
        }),
        Some(_) => None,
    };
    let cost = fits.cost.as_ref();
    let total = spec.params.total as f64;
    FinalModel {
        name: spec.name.clone(),
        key: spec.key.clone(),
        layers: spec.identity.model.layers,
        d_model: spec.identity.model.d_model,
        heads: spec.identity.model.heads,
        params: n,
        params_total: spec.params.total,
        tokens: spec.tokens(),
        flops: spec.flops,
        status: match record.map(|r| r.status) {
            None => "missing".into(),
            Some(RunStatus::Ok) => "ok".into(),
            Some(RunStatus::Diverged) => "diverged".into(),
            Some(RunStatus::Failed) => "failed".into(),
        },
        measured: record.and_then(|r| r.val_loss),
        predicted: law.map_or(f64::NAN, |l| l.loss(n, d)),
        law_ci: bootstrap
            .and_then(|(laws, _, _, confidence)| band(laws, confidence, |l| l.loss(n, d))),
        predicted_ci: bootstrap.and_then(|(laws, residuals, k, confidence)| {
            let at = crate::fit::law::At::nd(n, d);
            crate::fit::prediction::one_run(laws, residuals, k, &at, confidence)
        }),
        wall_seconds: record
            .filter(|r| r.status == RunStatus::Ok)
            .map(|r| r.wall_seconds),
        // At the threads the run trained with, else at the fitted runs' usual count.
        wall_forecast: cost.and_then(|c| c.wall_seconds.as_ref()).map(|w| {
            let threads = record.map_or(0.0, |r| r.threads as f64);
            w.predict_at(total, d, if threads > 0.0 { threads } else { w.threads })
        }),
        peak_rss_bytes: record.and_then(|r| r.peak_rss_bytes),
        rss_forecast: cost
            .and_then(|c| c.peak_rss_bytes.as_ref())
            .map(|w| w.predict(total, d)),
        lr: spec.identity.train.lr,
        batch: spec.identity.train.batch,
        metrics: record
            .filter(|r| r.status == RunStatus::Ok)
            .map(|r| r.metrics.clone())
            .unwrap_or_default(),
    }
}

/// The final comparison from the plan, the store's records and the fits.
pub fn final_ctx(
    plan: &FinalPlan,
    run: Option<&RunResult>,
    baseline: Option<&RunResult>,
    neighbour: Option<&RunResult>,
    fits: &FitReport,
) -> FinalCtx {
    let run = final_model(&plan.run, run, plan, fits);
    let baseline = final_model(&plan.baseline, baseline, plan, fits);
    let neighbour = plan
        .neighbour
        .as_ref()
        .map(|spec| final_model(spec, neighbour, plan, fits));
    let pinned = fits
        .chinchilla
        .as_ref()
        .and_then(|c| c.pinned.as_ref())
        .filter(|_| plan.reduced.as_ref().is_some_and(|r| r.0 == "pinned_e"));
    let alloc = match pinned {
        Some(p) => p.allocation.iter().find(|a| a.compute == plan.budget),
        None => fits.allocation.iter().find(|a| a.compute == plan.budget),
    };
    let ok = |m: &FinalModel| (m.status == "ok").then_some(m.measured).flatten();
    let measured = ok(&run);
    let gain = measured.zip(ok(&baseline)).map(|(f, b)| b - f);
    FinalCtx {
        budget: plan.budget,
        law: match &plan.reduced {
            Some((form, _)) if form == "overtrain" => "overtrain".into(),
            Some((form, _)) => format!("chinchilla ({form})"),
            None => "chinchilla".into(),
        },
        chosen_by: plan.chosen_by.clone(),
        n_opt: plan.n_opt,
        d_opt: plan.d_opt,
        // The allocation's intervals are the unlimited optimum's.
        n_opt_ci: alloc
            .filter(|_| plan.limits.is_none())
            .and_then(|a| a.ci.map(|c| c[0])),
        d_opt_ci: alloc
            .filter(|_| plan.limits.is_none())
            .and_then(|a| a.ci.map(|c| c[1])),
        limits: plan.limits.clone(),
        rel_error: measured.map(|m| (run.predicted / m - 1.0).abs()),
        within_ci: measured
            .zip(run.predicted_ci)
            .map(|(m, [lo, hi])| lo <= m && m <= hi),
        gain,
        gain_rel: gain.zip(ok(&baseline)).map(|(g, b)| g / b),
        lr_from_law: plan.lr_from_law,
        batch_gain: measured
            .zip(neighbour.as_ref().and_then(ok))
            .map(|(f, n)| n - f),
        batch_from_law: fits
            .hyper
            .as_ref()
            .and_then(|h| h.batch.as_ref())
            .is_some_and(|b| b.law_d.is_some()),
        neighbour,
        run,
        baseline,
    }
}

/// Everything templates and checks can read.
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    pub study: StudyCtx,
    pub data: DataCtx,
    pub runs: Vec<RunRow>,
    pub fits: FitReport,
    pub holdout: Option<HoldoutReport>,
    #[serde(rename = "final")]
    pub final_run: Option<FinalCtx>,
    pub manifest: Manifest,
}

impl StudyCtx {
    pub fn of(study: &Study) -> Self {
        StudyCtx {
            name: study.name.clone(),
            title: study.title.clone(),
            description: study.description.clone(),
            seed: study.seed,
            file: study.path.display().to_string(),
            sha256: study.sha256.clone(),
        }
    }
}
