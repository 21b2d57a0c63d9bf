//! Fitting a study: the rows its laws are fitted to (its finished runs, or its imported
//! results), what a `fits.json` was computed from, and the fit itself, written to
//! `STORE/studies/<name>/fits.json` and reused while its inputs are unchanged.

use sha2::{Digest, Sha256};

use super::Error;
use super::curves::{self, RunCurve};
use crate::data::identity::hex;
use crate::files::atomic::write_atomic;
use crate::fit::diagnose::{LeftOut, Warning};
use crate::fit::hyper::{SweepRun, envelope};
use crate::fit::suite::{CurveRow, FitReport, Request, Row, fit_all};
use crate::record::{RunStatus, pretty};
use crate::store::import::import_rows;
use crate::store::{EntryState, Store};
use crate::study::plan::plan;
use crate::study::{FitSpec, ParamsConvention, Source, Study, Sweep};

/// Constraints for `fit_study` (none from `scalebook run`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Constraints {
    pub wall_budget: Option<f64>,
    pub max_params: Option<f64>,
}

/// What the fits read: the fitted rows, the learning curves, the runs left out and the
/// data's known entropy.
#[derive(Debug, Clone, Default)]
pub struct FitInput {
    pub rows: Vec<Row>,
    pub curves: Vec<CurveRow>,
    /// Planned runs recorded as diverged or failed.
    pub left_out: Vec<LeftOut>,
    /// The synthetic language's entropy rate and its standard error.
    pub entropy: Option<(f64, f64)>,
    /// The validation set's own floor, as the runs recorded it (synthetic data).
    pub val_floor: Option<f64>,
    /// Every run of a learning-rate sweep (empty without one); `rows` holds the best run of
    /// each point.
    pub sweep: Vec<SweepRun>,
    /// Runs whose external trainer built another parameter count than the plan's:
    /// (run, planned, built).
    pub params_mismatch: Vec<(String, u64, u64)>,
    /// The machines the fitted runs were timed on (`host / cpu [device]`) and how many runs
    /// each, in plan order of their first run.
    pub machines: Vec<(String, usize)>,
    /// Every finished run's curve and spec, for `law: curve` (empty without one).
    pub curve_runs: Vec<RunCurve>,
    /// Learning-rate transfer (`train.lr_transfer`), once the sweep has decided it.
    pub transfer: Option<crate::fit::hyper::TransferReport>,
}

/// Rows and curves of a trained study from the store (finished, ok runs only); diverged and
/// failed runs are listed as left out.
fn trained_rows(study: &Study, store: &Store) -> Result<FitInput, Error> {
    let (specs, transfer) = super::transfer::planned_and_decided(study, store)?;
    let mut input = FitInput {
        transfer,
        ..FitInput::default()
    };
    let swept = study.training().is_some_and(|t| t.sweeps());
    let convention = params_convention(study);
    let wants_curves = study.fits.iter().any(|f| matches!(f, FitSpec::Curve(_)));
    let (rows, curves) = (&mut input.rows, &mut input.curves);
    let mut missing = 0;
    for spec in &specs {
        let state = store.inspect(spec);
        if let EntryState::Done(e) | EntryState::Failed(e) = &state {
            let r = &e.result;
            // The data's entropy rate as the runs recorded it (synthetic data only).
            if input.entropy.is_none()
                && let Some(h) = r.data_entropy_nats
            {
                input.entropy = Some((h, r.data_entropy_stderr.unwrap_or(0.0)));
            }
            if input.val_floor.is_none() {
                input.val_floor = r.val_entropy_nats;
            }
            if swept {
                input.sweep.push(SweepRun {
                    name: r.name.clone(),
                    point: spec.point().to_string(),
                    n: match convention {
                        ParamsConvention::Total => r.params_total as f64,
                        ParamsConvention::NonEmbedding => r.params_non_embedding as f64,
                    },
                    d: r.tokens as f64,
                    lr: spec.identity.train.lr,
                    batch: spec.identity.train.batch,
                    batch_tokens: (spec.identity.train.batch * spec.identity.model.context) as f64,
                    flops: spec.flops,
                    loss: r.val_loss.filter(|_| r.status == RunStatus::Ok),
                });
            }
        }
        let left_out = |status: &str, reason: String| LeftOut {
            name: spec.name.clone(),
            status: status.into(),
            reason,
            n: spec.n(convention),
            d: spec.tokens() as f64,
        };
        let (r, curve) = match state {
            EntryState::Done(e) => (e.result, e.curve),
            EntryState::Failed(e) => {
                let r = e.result;
                input.left_out.push(LeftOut {
                    reason: r.reason.clone().unwrap_or_default(),
                    status: format!("{:?}", r.status).to_lowercase(),
                    ..left_out("", String::new())
                });
                continue;
            }
            EntryState::Missing => {
                input.left_out.push(left_out("missing", String::new()));
                missing += 1;
                continue;
            }
            EntryState::Corrupt(why) => {
                eprintln!(
                    "warning: {}: {why}; not fitted (`scalebook run` retrains it)",
                    spec.dir_name()
                );
                input.left_out.push(left_out("corrupt", why));
                missing += 1;
                continue;
            }
        };
        if r.status != RunStatus::Ok {
            continue;
        }
        let machine = match &r.device {
            Some(device) => format!("{} / {} [{device}]", r.host, r.cpu),
            None => format!("{} / {}", r.host, r.cpu),
        };
        match input.machines.iter_mut().find(|(m, _)| *m == machine) {
            Some((_, n)) => *n += 1,
            None => input.machines.push((machine, 1)),
        }
        if let Some(built) = r.params_built {
            input
                .params_mismatch
                .push((r.name.clone(), r.params_total, built));
        }
        let Some(loss) = r.val_loss else { continue };
        rows.push(Row {
            name: r.name.clone(),
            params_total: r.params_total as f64,
            params_non_embedding: r.params_non_embedding as f64,
            tokens: r.tokens as f64,
            unique_tokens: r.unique_tokens.map(|u| u as f64),
            loss,
            flops: r.flops,
            budget: spec.budget,
            wall_seconds: Some(r.independent_wall_seconds()).filter(|w| *w > 0.0),
            peak_rss_bytes: r.peak_rss_bytes.map(|b| b as f64),
            threads: Some(r.threads as f64).filter(|t| *t > 0.0),
            metrics: r.metrics.clone(),
            variant: None,
        });
        let flops_per_token = r.flops / r.tokens as f64;
        if wants_curves {
            input.curve_runs.push(RunCurve {
                spec: spec.clone(),
                curve: curve.clone(),
                probe: false,
            });
        }
        for point in curve {
            if let Some(val) = point.val_loss {
                curves.push(CurveRow {
                    params_total: r.params_total as f64,
                    params_non_embedding: r.params_non_embedding as f64,
                    tokens: point.tokens as f64,
                    flops: flops_per_token * point.tokens as f64,
                    loss: val,
                });
            }
        }
    }
    if swept {
        // The fits see the best run of each point (the lower envelope over learning rates).
        let chosen: Vec<String> = envelope(&input.sweep).into_iter().map(|c| c.run).collect();
        input.rows.retain(|r| chosen.contains(&r.name));
    }
    if missing > 0 {
        eprintln!(
            "note: {missing} of {} planned runs are not in the store yet; fitting the {} that are \
             (`scalebook run` trains the rest)",
            specs.len(),
            input.rows.len()
        );
    }
    Ok(input)
}

/// The N convention of the study's Chinchilla fit (total parameters without one).
pub(crate) fn params_convention(study: &Study) -> ParamsConvention {
    study
        .fits
        .iter()
        .find_map(|f| match f {
            FitSpec::Chinchilla { params, .. } => Some(*params),
            _ => None,
        })
        .unwrap_or(ParamsConvention::Total)
}

/// The budgets to allocate: the final run's and the IsoFLOP budgets, else the study's
/// largest run's compute.
fn budgets(study: &Study, rows: &[Row]) -> Vec<f64> {
    let mut out: Vec<f64> = study.final_run.iter().map(|f| f.budget).collect();
    if let Some(Sweep::IsoFlop { budgets, .. }) = study.training().map(|t| &t.sweep) {
        out.extend(budgets);
    }
    if out.is_empty()
        && let Some(max) = rows.iter().map(|r| r.flops).max_by(f64::total_cmp)
    {
        out.push(max);
    }
    out.sort_by(f64::total_cmp);
    out.dedup();
    out
}

/// The rows (and learning curves) a study's fits use: its finished runs, or its imported
/// results.
pub fn study_rows(study: &Study, store: &Store) -> Result<FitInput, Error> {
    match &study.source {
        Source::Import(spec) => Ok(FitInput {
            rows: import_rows(spec).map_err(|e| Error::Input(e.to_string()))?,
            ..FitInput::default()
        }),
        Source::Train(_) => {
            let mut input = trained_rows(study, store)?;
            if !input.curve_runs.is_empty() {
                input.curve_runs.extend(probes(study, store)?);
            }
            Ok(input)
        }
    }
}

/// The finished independent runs a branch study compares with: its curve law predicts them.
fn probes(study: &Study, store: &Store) -> Result<Vec<RunCurve>, Error> {
    let Some(other) = crate::study::branches::comparison(study) else {
        return Ok(Vec::new());
    };
    let specs = plan(&other).map_err(|e| Error::Input(e.to_string()))?;
    Ok(specs
        .into_iter()
        .filter_map(|spec| match store.inspect(&spec) {
            EntryState::Done(e) if e.result.status == RunStatus::Ok => Some(RunCurve {
                spec,
                curve: e.curve,
                probe: true,
            }),
            _ => None,
        })
        .collect())
}

/// The version of the fitting code's output: raised whenever a change to `fit/` can change
/// `fits.json` for the same inputs, so a stored `fits.json` from older code is refitted. The
/// fit's golden test (`fit::suite`) fails when the output moves without it.
pub const FIT_VERSION: u32 = 10;

/// The fits' numbers under [`FIT_VERSION`]: a digest of `fits.json` (less its `inputs`) for
/// the golden mock study (`tests/fixtures/valid/report_mock.yaml`, law
/// `1.5,300,500,0.3,0.35,0.01`), per architecture. The golden test fails when the fitting
/// code's output moves: raise `FIT_VERSION` with it and put the new digest here.
pub const FIT_GOLDEN: &[(&str, &str)] = &[("x86_64", "c554cec0f0b5f242")];

/// What a `fits.json` was computed from: the fitting code ([`FIT_VERSION`]), the study
/// file's bytes, the constraints, and every number the fits read — each fitted row (its
/// sizes, tokens, compute, budget, loss, wall time, memory and threads), every learning-curve point,
/// every run of a learning-rate sweep, the runs left out and the known entropy. A report
/// reuses `fits.json` only when this matches.
pub fn fit_inputs(study: &Study, input: &FitInput, constraints: Constraints) -> String {
    let mut h = Sha256::new();
    let mut text = |s: &str| {
        h.update(s.as_bytes());
        h.update([0]);
    };
    text(&format!("fit/{FIT_VERSION}"));
    text(&study.sha256);
    for l in &input.left_out {
        text(&l.name);
        text(&l.status);
        text(&l.reason);
    }
    for r in &input.sweep {
        text(&r.name);
        text(&r.point);
    }
    for r in &input.rows {
        text(&r.name);
    }
    for (name, planned, built) in &input.params_mismatch {
        text(&format!("{name} {planned} {built}"));
    }
    // Only where they differ do the machines change the fits (a warning): a study timed on
    // one machine keeps the digest it always had.
    if input.machines.len() > 1 {
        for (machine, n) in &input.machines {
            text(&format!("{machine} {n}"));
        }
    }
    let mut reals: Vec<Option<f64>> = vec![constraints.wall_budget, constraints.max_params];
    reals.extend([input.entropy.map(|e| e.0), input.entropy.map(|e| e.1)]);
    if input.val_floor.is_some() {
        reals.push(input.val_floor);
    }
    for r in &input.sweep {
        reals.extend([Some(r.n), Some(r.d), Some(r.lr), r.loss]);
    }
    for r in &input.rows {
        reals.extend(
            [
                r.params_total,
                r.params_non_embedding,
                r.tokens,
                r.loss,
                r.flops,
            ]
            .map(Some),
        );
        reals.extend([r.budget, r.wall_seconds, r.peak_rss_bytes, r.threads]);
    }
    for c in &input.curves {
        reals.extend(
            [
                c.params_total,
                c.params_non_embedding,
                c.tokens,
                c.flops,
                c.loss,
            ]
            .map(Some),
        );
    }
    reals.extend(
        curves::digest_numbers(&input.curve_runs)
            .into_iter()
            .map(Some),
    );
    for v in reals {
        // Absent and present values never collide: NaN bits mark absence.
        h.update(v.unwrap_or(f64::NAN).to_bits().to_le_bytes());
    }
    hex(&h.finalize())
}

/// Fit `input` and write `fits.json`.
pub fn fit_rows(
    study: &Study,
    store: &Store,
    input: &FitInput,
    constraints: Constraints,
) -> Result<FitReport, Error> {
    let report = compute(study, input, constraints);
    let dir = store.study_dir(&study.name);
    let out = dir.join("fits.json");
    std::fs::create_dir_all(&dir)
        .and_then(|_| write_atomic(&out, pretty(&report).as_bytes()))
        .map_err(|e| Error::Io(format!("{}: {e}", out.display())))?;
    Ok(report)
}

/// The fits of `input`, as `fits.json` would hold them (nothing is written).
pub fn compute(study: &Study, input: &FitInput, constraints: Constraints) -> FitReport {
    let rows = &input.rows;
    let swept = study.training().is_some_and(|t| t.sweeps());
    let (curve_groups, curve_unusable) =
        curves::groups(&input.curve_runs, swept, params_convention(study));
    let request = Request {
        curve_groups: &curve_groups,
        curve_unusable,
        transfer: input.transfer.clone(),
        fits: &study.fits,
        curves: &input.curves,
        holdout: study.holdout,
        rollout: study.rollout,
        leave_one_out_tokens: study.leave_one_out_tokens,
        budgets: budgets(study, rows),
        seed: study.seed,
        wall_budget: constraints.wall_budget,
        max_params: constraints.max_params,
        entropy: input.entropy,
        val_floor: input.val_floor,
        left_out: input.left_out.clone(),
        final_budget: study.final_run.as_ref().map(|f| f.budget),
        final_unique_tokens: study.final_run.as_ref().and_then(|f| f.unique_tokens),
        sweep: input.sweep.clone(),
        batch: crate::fit::batch::BatchOptions {
            compare: study.final_run.and_then(|f| f.compare_batch),
        },
    };
    let mut report = fit_all(rows, &request);
    report.decisions = study
        .variants
        .as_ref()
        .and_then(|v| crate::fit::decisions::decide(rows, v, study.seed));
    if let Some(w) = params_mismatch(&input.params_mismatch) {
        report.warnings.push(w);
    }
    if study.fits.iter().any(|f| matches!(f, FitSpec::Cost))
        && let Some(w) = mixed_machines(&input.machines)
    {
        report.warning_codes.push(w.code.clone());
        report.warnings.push(w);
    }
    report.inputs = fit_inputs(study, input, constraints);
    report.fit_version = FIT_VERSION;
    report
}

/// The warning for a cost law fitted on runs timed on different machines: one law over
/// them mixes their speeds (each record names its machine).
fn mixed_machines(machines: &[(String, usize)]) -> Option<Warning> {
    if machines.len() < 2 {
        return None;
    }
    let mut sorted = machines.to_vec();
    sorted.sort();
    let list: Vec<String> = sorted
        .iter()
        .map(|(m, n)| format!("{m} ({n} run{})", if *n == 1 { "" } else { "s" }))
        .collect();
    Some(
        Warning::new(
            "cost_mixed_machines",
            "cost",
            format!(
                "the cost law's runs were timed on {} machines: {}; one law over them mixes \
                 their speeds, so its times describe none of them",
                sorted.len(),
                list.join(", ")
            ),
            "train the runs on one machine (a Slurm partition of one node type, or one GPU \
             model), or read the cost law as a rough average",
        )
        .with("machines", sorted.len() as f64),
    )
}

/// The warning for runs whose trainer built another model than the plan: the fits place
/// them at the plan's parameter count.
fn params_mismatch(runs: &[(String, u64, u64)]) -> Option<Warning> {
    if runs.is_empty() {
        return None;
    }
    let list: Vec<String> = runs
        .iter()
        .map(|(name, planned, built)| format!("{name} (planned {planned}, built {built})"))
        .collect();
    Some(Warning::new(
        "params_mismatch",
        "runs",
        format!(
            "the trainer built another parameter count than the plan for {} run(s): {}; the \
             fits place them at the plan's count",
            runs.len(),
            list.join("; ")
        ),
        "make the trainer build the contract's `model` exactly (its `params` say the count \
         expected), or fix the shape in the study file",
    ))
}

/// The study's recorded `fits.json`, if there is a readable one.
pub fn recorded(study: &Study, store: &Store) -> Option<FitReport> {
    let path = store.study_dir(&study.name).join("fits.json");
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// `fits.json` when it was computed from exactly `input`.
fn cached(study: &Study, store: &Store, input: &FitInput) -> Option<FitReport> {
    recorded(study, store).filter(|f| f.inputs == fit_inputs(study, input, Constraints::default()))
}

/// The study's fits as the store stands, written nowhere: `fits.json` when current, else
/// computed now.
pub fn fits_now(study: &Study, store: &Store) -> Result<FitReport, Error> {
    let input = study_rows(study, store)?;
    Ok(cached(study, store, &input)
        .unwrap_or_else(|| compute(study, &input, Constraints::default())))
}

/// The study's fits: `fits.json` when it was computed from exactly the runs the store holds
/// now, else a fresh fit.
pub fn current_fits(study: &Study, store: &Store) -> Result<FitReport, Error> {
    let input = study_rows(study, store)?;
    match cached(study, store, &input) {
        Some(f) => Ok(f),
        None => {
            if !input.rows.is_empty() {
                eprintln!(
                    "{}: fitting {} runs (fits.json is missing or older than the store)",
                    study.name,
                    input.rows.len()
                );
            }
            fit_rows(study, store, &input, Constraints::default())
        }
    }
}
