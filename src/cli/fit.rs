//! `scalebook fit STUDY [--store DIR] [--format table|json]`: fit the study's laws to its
//! collected runs (or its imported results), write `STORE/studies/<name>/fits.json`, and
//! print it.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::store_arg::StoreArg;
use super::{Failure, Format, exit, load_study};
use crate::data::identity::hex;
use crate::fit::diagnose::LeftOut;
use crate::fit::hyper::{SweepRun, envelope};
use crate::fit::suite::{CurveRow, FitReport, Request, Row, fit_all};
use crate::record::RunStatus;
use crate::record::pretty;
use crate::store::atomic::write_atomic;
use crate::store::import::import_rows;
use crate::store::{EntryState, Store};
use crate::study::plan::plan;
use crate::study::{FitSpec, ParamsConvention, Source, Study, Sweep};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The study file (YAML).
    pub study: PathBuf,
    #[command(flatten)]
    pub store: StoreArg,
    #[command(flatten)]
    pub producer: super::producer::ProducerArg,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also find the best (N, D) for this many wall-clock seconds on this machine, through
    /// the study's `cost` law.
    #[arg(long, value_name = "SECONDS")]
    pub wall_budget: Option<f64>,
    /// Cap on parameters (memory) for the constrained optima.
    #[arg(long, value_name = "N")]
    pub max_params: Option<f64>,
}

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
    /// Every run of a learning-rate sweep (empty without one); `rows` holds the best run of
    /// each point.
    pub sweep: Vec<SweepRun>,
}

/// Rows and curves of a trained study from the store (finished, ok runs only); diverged and
/// failed runs are listed as left out.
fn trained_rows(study: &Study, store: &Store) -> Result<FitInput, Failure> {
    let specs = plan(study).map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    let mut input = FitInput::default();
    let swept = study.training().is_some_and(|t| t.learning_rates.len() > 1);
    let convention = params_convention(study);
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
                    loss: r.val_loss.filter(|_| r.status == RunStatus::Ok),
                });
            }
        }
        let (r, curve) = match state {
            EntryState::Done(e) => (e.result, e.curve),
            EntryState::Failed(e) => {
                let r = e.result;
                input.left_out.push(LeftOut {
                    name: r.name.clone(),
                    status: format!("{:?}", r.status).to_lowercase(),
                    reason: r.reason.clone().unwrap_or_default(),
                });
                continue;
            }
            EntryState::Missing => {
                missing += 1;
                continue;
            }
            EntryState::Corrupt(why) => {
                eprintln!(
                    "warning: {}: {why}; not fitted (`scalebook run` retrains it)",
                    spec.dir_name()
                );
                missing += 1;
                continue;
            }
        };
        if r.status != RunStatus::Ok {
            continue;
        }
        let Some(loss) = r.val_loss else { continue };
        rows.push(Row {
            name: r.name.clone(),
            params_total: r.params_total as f64,
            params_non_embedding: r.params_non_embedding as f64,
            tokens: r.tokens as f64,
            loss,
            flops: r.flops,
            budget: spec.budget,
            wall_seconds: Some(r.wall_seconds).filter(|w| *w > 0.0),
            peak_rss_bytes: r.peak_rss_bytes.map(|b| b as f64),
        });
        let flops_per_token = r.flops / r.tokens as f64;
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
fn params_convention(study: &Study) -> ParamsConvention {
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

/// Open the store named by `store_arg`.
pub fn open_store(store_arg: &StoreArg) -> Result<Store, Failure> {
    let path = store_arg.path();
    Store::open(&path).map_err(|e| {
        Failure::new(
            exit::INTERNAL,
            format!("{}: cannot use the run store: {e}", path.display()),
        )
    })
}

/// The rows (and learning curves) a study's fits use: its finished runs, or its imported
/// results.
pub fn study_rows(study: &Study, store: &Store) -> Result<FitInput, Failure> {
    match &study.source {
        Source::Import(spec) => Ok(FitInput {
            rows: import_rows(spec).map_err(|e| Failure::new(exit::USAGE, e.to_string()))?,
            ..FitInput::default()
        }),
        Source::Train(_) => trained_rows(study, store),
    }
}

/// The version of the fitting code's output: raised whenever a change to `fit/` can change
/// `fits.json` for the same rows, so a stored `fits.json` from older code is refitted.
pub const FIT_VERSION: u32 = 4;

/// What a `fits.json` was computed from: the study file's bytes, the tool and fit versions,
/// every fitted row, the runs left out and the known entropy. A report reuses `fits.json`
/// only when this matches.
pub fn fit_inputs(study: &Study, input: &FitInput) -> String {
    let mut h = Sha256::new();
    h.update(study.sha256.as_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(FIT_VERSION.to_le_bytes());
    for l in &input.left_out {
        for part in [&l.name, &l.status, &l.reason] {
            h.update(part.as_bytes());
            h.update([0]);
        }
    }
    if let Some((e, se)) = input.entropy {
        h.update(e.to_bits().to_le_bytes());
        h.update(se.to_bits().to_le_bytes());
    }
    for r in &input.sweep {
        h.update(r.name.as_bytes());
        h.update([0]);
        for v in [r.lr, r.loss.unwrap_or(f64::NAN)] {
            h.update(v.to_bits().to_le_bytes());
        }
    }
    for r in &input.rows {
        h.update(r.name.as_bytes());
        for v in [
            r.params_total,
            r.params_non_embedding,
            r.tokens,
            r.loss,
            r.flops,
        ] {
            h.update(v.to_bits().to_le_bytes());
        }
    }
    hex(&h.finalize())
}

/// Fit a study and write its `fits.json`.
pub fn fit_study(
    study: &Study,
    store_arg: &StoreArg,
    constraints: Constraints,
) -> Result<FitReport, Failure> {
    let store = open_store(store_arg)?;
    let input = study_rows(study, &store)?;
    fit_rows(study, &store, &input, constraints)
}

/// Fit `input` and write `fits.json`.
pub fn fit_rows(
    study: &Study,
    store: &Store,
    input: &FitInput,
    constraints: Constraints,
) -> Result<FitReport, Failure> {
    let rows = &input.rows;
    let request = Request {
        fits: &study.fits,
        curves: &input.curves,
        holdout: study.holdout,
        budgets: budgets(study, rows),
        seed: study.seed,
        wall_budget: constraints.wall_budget,
        max_params: constraints.max_params,
        entropy: input.entropy,
        left_out: input.left_out.clone(),
        final_budget: study.final_run.as_ref().map(|f| f.budget),
        sweep: input.sweep.clone(),
    };
    let mut report = fit_all(rows, &request);
    report.inputs = fit_inputs(study, input);
    let dir = store.study_dir(&study.name);
    let out = dir.join("fits.json");
    std::fs::create_dir_all(&dir)
        .and_then(|_| write_atomic(&out, pretty(&report).as_bytes()))
        .map_err(|e| Failure::new(exit::INTERNAL, format!("{}: {e}", out.display())))?;
    Ok(report)
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let study = args.producer.apply(load_study(&args.study)?)?;
    for (flag, value) in [
        ("--wall-budget", args.wall_budget),
        ("--max-params", args.max_params),
    ] {
        if value.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
            return Err(Failure::new(
                exit::USAGE,
                format!("{flag} must be a positive number"),
            ));
        }
    }
    let constraints = Constraints {
        wall_budget: args.wall_budget,
        max_params: args.max_params,
    };
    let report = fit_study(&study, &args.store, constraints)?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    match args.format {
        Format::Json => print!("{}", pretty(&report)),
        Format::Table => {
            if study.is_mock() {
                print!("{}", super::MOCK_LABEL);
            }
            print!("{}", summary(&report))
        }
    }
    Ok(())
}

fn ci(v: Option<[f64; 2]>) -> String {
    v.map(|[lo, hi]| format!(" [{lo:.4}, {hi:.4}]"))
        .unwrap_or_default()
}

/// A readable summary of the fits.
fn summary(r: &FitReport) -> String {
    let mut out = format!("{} runs fitted\n", r.points);
    if let Some(c) = &r.chinchilla {
        let i = c.ci.as_ref();
        out.push_str(&format!(
            "chinchilla  L = E + A/N^α + B/D^β  (Huber δ {}, {} starts, {} at best, objective {:.8e}, |∇| {:.1e})\n",
            c.delta, c.starts, c.starts_at_best, c.objective, c.grad_norm
        ));
        out.push_str(&format!("  E {:.4}{}\n", c.e, ci(i.map(|i| i.e))));
        out.push_str(&format!("  A {:.4}{}\n", c.a, ci(i.map(|i| i.a))));
        out.push_str(&format!("  B {:.4}{}\n", c.b, ci(i.map(|i| i.b))));
        out.push_str(&format!("  α {:.5}{}\n", c.alpha, ci(i.map(|i| i.alpha))));
        out.push_str(&format!("  β {:.5}{}\n", c.beta, ci(i.map(|i| i.beta))));
    }
    for a in &r.allocation {
        out.push_str(&format!(
            "allocation  C {:.3e}: N_opt {:.4e}, D_opt {:.4e}, {:.1} tokens/param, loss {:.4}\n",
            a.compute, a.n_opt, a.d_opt, a.tokens_per_param, a.loss
        ));
    }
    if let Some(iso) = &r.isoflop {
        out.push_str(&format!(
            "isoflop     N_opt ∝ C^{:.4}, D_opt ∝ C^{:.4} over {} budgets\n",
            iso.a,
            iso.b,
            iso.budgets.len()
        ));
    }
    if let Some(f) = &r.frontier {
        out.push_str(&format!(
            "frontier    N ∝ C^{:.4}, D ∝ C^{:.4} over {} compute buckets\n",
            f.a,
            f.b,
            f.points.len()
        ));
    }
    for p in &r.power {
        out.push_str(&format!(
            "power       {:?} {:?}: E {:.4}, A {:.4}, α {:.4}; RMSE(ln) {:.4}, R² {:.4}, AIC {:.1}{}\n",
            p.x,
            p.fit.form,
            p.fit.e,
            p.fit.a,
            p.fit.alpha,
            p.fit.rmse_log,
            p.fit.r2_log,
            p.fit.aic,
            p.holdout_rel_error
                .map(|e| format!(", hold-out error {:.2} %", e * 100.0))
                .unwrap_or_default()
        ));
    }
    if let Some(h) = &r.holdout {
        out.push_str(&format!(
            "holdout     {} {}: max relative error {:.2} %, mean {:.2} % on {} runs\n",
            h.kind,
            h.k,
            h.rel_error_max * 100.0,
            h.rel_error_mean * 100.0,
            h.points.len()
        ));
    }
    for c in &r.constrained {
        out.push_str(&format!(
            "constrained {} {:.3e}{}: N {:.4e}, D {:.4e}, loss {:.4}{}\n",
            c.budget_kind,
            c.budget,
            c.max_params
                .map(|m| format!(" (N ≤ {m:.3e})"))
                .unwrap_or_default(),
            c.optimum.n,
            c.optimum.d,
            c.optimum.loss,
            if c.optimum.capped { ", capped" } else { "" }
        ));
    }
    if let Some(c) = &r.cost
        && let Some(w) = &c.wall_seconds
    {
        out.push_str(&format!(
            "cost        wall seconds ∝ N^{:.3} D^{:.3} (RMSE(ln) {:.3})\n",
            w.p, w.q, w.rmse_log
        ));
    }
    out
}
