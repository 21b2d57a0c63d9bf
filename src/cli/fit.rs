//! `scalebook fit STUDY [--store DIR] [--format table|json] [--predict …]`: fit the study's
//! laws to its collected runs (or its imported results), write
//! `STORE/studies/<name>/fits.json`, and print it — or, with `--predict`, the curve law's
//! predicted final loss (and whole curve) for the sizes, token counts and schedules named.

use std::path::PathBuf;

use super::store_arg::StoreArg;
use super::{Failure, Format, exit, load_study};
use crate::fit::suite::FitReport;
use crate::pipeline::fitting::{Constraints, fit_rows, study_rows};
use crate::record::pretty;
use crate::study::Study;

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
    /// Predict a run's final loss (and whole validation curve) from the study's curve law
    /// (`law: curve`): `size=NAME,tokens=D[,schedule=cosine|wsd|constant][,lr=ETA]
    /// [,warmup_steps=K]` — the study's schedule and warmup fraction (`warmup_steps`: a
    /// trunk's, for a branch) and, without `lr`, the size's best learning rate. Repeatable. Prints
    /// the predictions instead of the fits (`--format json`: `{"predictions": […]}`).
    #[arg(long, value_name = "QUERY")]
    pub predict: Vec<String>,
}

/// Fit a study and write its `fits.json`.
pub fn fit_study(
    study: &Study,
    store_arg: &StoreArg,
    constraints: Constraints,
) -> Result<FitReport, Failure> {
    let store = store_arg.open(study)?;
    let input = study_rows(study, &store)?;
    Ok(fit_rows(study, &store, &input, constraints)?)
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
    let queries = args
        .predict
        .iter()
        .map(|q| {
            crate::pipeline::curves::Query::parse(q)
                .map_err(|why| Failure::new(exit::USAGE, format!("--predict `{q}`: {why}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !queries.is_empty()
        && !study
            .fits
            .iter()
            .any(|f| matches!(f, crate::study::FitSpec::Curve(_)))
    {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "--predict needs a curve law: add `{{ law: curve }}` to {}'s `fits:`",
                args.study.display()
            ),
        ));
    }
    let report = fit_study(&study, &args.store, constraints)?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if !queries.is_empty() {
        return predictions(&study, &report, &queries, args.format);
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

/// Print the curve law's answers to `queries`.
fn predictions(
    study: &Study,
    report: &FitReport,
    queries: &[crate::pipeline::curves::Query],
    format: Format,
) -> Result<(), Failure> {
    let (Some(curve), Some(train)) = (&report.curve, study.training().map(|t| t.train)) else {
        return Err(Failure::new(
            exit::USAGE,
            "--predict needs trained runs with learning curves",
        ));
    };
    let found = crate::pipeline::curves::predict(&train, curve, queries)
        .map_err(|why| Failure::new(exit::USAGE, format!("--predict: {why}")))?;
    match format {
        Format::Json => print!("{}", pretty(&serde_json::json!({ "predictions": found }))),
        Format::Table => {
            println!(
                "size\tlr\tschedule\ttokens\tsteps\tpredicted final loss ({} law)",
                curve.form
            );
            for p in &found {
                println!(
                    "{}\t{:e}\t{}\t{:.4e}\t{}\t{:.5}",
                    p.size, p.lr, p.schedule, p.tokens, p.steps, p.loss
                );
            }
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
