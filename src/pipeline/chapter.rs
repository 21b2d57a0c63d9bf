//! A study's chapter: its final run's plan, and the report's input gathered from the store
//! (runs, curves, fits, final run, manifest) and rendered into the book.

use std::path::Path;

use super::Error;
use super::final_target::Decision;
use super::fitting::study_rows;
use crate::fit::suite::{FitReport, Row};
use crate::record::RunResult;
use crate::report::context::{DataCtx, FinalCtx, RunRow, curves, final_ctx, run_rows};
use crate::report::manifest::Manifest;
use crate::report::{Input, Rendered, render};
use crate::store::{EntryState, Store, collect};
use crate::study::final_run::{FinalPlan, final_plan};
use crate::study::{Source, Study};

/// The final run and baseline the fits call for, if the study has `final:` and the law the
/// data support gives an optimum near enough to the grid ([`super::final_target`]).
pub fn plan_final(study: &Study, fits: &FitReport) -> Result<Option<FinalPlan>, Error> {
    Ok(final_decision(study, fits)?.1)
}

/// What the fits say about the final run, and its plan when it trains.
pub fn final_decision(
    study: &Study,
    fits: &FitReport,
) -> Result<(Decision, Option<FinalPlan>), Error> {
    let decision = super::final_target::decide(study, fits);
    let plan = planned_final(study, fits, &decision)?;
    Ok((decision, plan))
}

fn planned_final(
    study: &Study,
    fits: &FitReport,
    decision: &Decision,
) -> Result<Option<FinalPlan>, Error> {
    let (Some(spec), Some(training)) = (study.final_run, study.training()) else {
        return Ok(None);
    };
    let Decision::Train(target) = decision else {
        return Ok(None);
    };
    let data = training
        .data
        .identity()
        .map_err(|e| Error::Input(e.to_string()))?;
    // With a sweep, the final run trains at the fitted η*(N, D) and B*(D).
    let hyper = fits.hyper.as_ref();
    let batch = hyper.and_then(|h| h.batch.as_ref());
    let laws = crate::study::final_run::HyperLaws {
        lr: hyper.and_then(|h| h.eta.as_ref()).map(|e| (e.c, e.a, e.b)),
        batch: batch.and_then(|b| b.law_d.as_ref()).map(|l| (l.c, l.b)),
        compare: batch
            .and_then(|b| b.compare.as_ref())
            .map(|c| (c.batch, c.eta.as_ref().map(|e| (e.c, e.a, e.b)))),
    };
    // Under limits, the training share of the budget (the rest serves inference).
    let budget = target
        .limits
        .as_ref()
        .map_or(spec.budget, |l| l.training_flops);
    Ok(final_plan(
        study.seed,
        training,
        &data,
        budget,
        target.n_opt,
        target.d_opt,
        target.params,
        laws,
    )
    .map(|mut fp| {
        if matches!(
            target.form.as_str(),
            "fixed_e" | "zero_e" | "pinned_e" | "overtrain"
        ) {
            fp.reduced = target.law.map(|l| (target.form.clone(), l));
        }
        fp.limits = target.limits.as_deref().cloned();
        fp.chosen_by = target.chosen_by.clone();
        fp
    }))
}

fn record(store: &Store, spec: &crate::study::RunSpec) -> Option<RunResult> {
    match store.inspect(spec) {
        EntryState::Done(r) | EntryState::Failed(r) => Some(r.result),
        EntryState::Missing | EntryState::Corrupt(_) => None,
    }
}

fn imported_rows(rows: &[Row]) -> Vec<RunRow> {
    rows.iter()
        .map(|r| RunRow {
            key: String::new(),
            name: r.name.clone(),
            size: crate::report::format::human(r.params_total),
            status: "ok".into(),
            reason: None,
            layers: 0,
            d_model: 0,
            heads: 0,
            params_total: r.params_total as u64,
            params_non_embedding: r.params_non_embedding as u64,
            tokens: r.tokens as u64,
            flops: r.flops,
            budget: r.budget,
            loss: Some(r.loss),
            wall_seconds: 0.0,
            independent_wall_seconds: 0.0,
            tokens_per_second: 0.0,
            peak_rss_bytes: None,
            spikes: None,
            largest_spike_step: None,
            largest_spike_ratio: None,
            lr: f64::NAN,
            batch: 0,
            point: r.name.clone(),
            selected: true,
            unique_tokens: r.unique_tokens.map(|u| u as u64),
            metrics: r.metrics.clone(),
        })
        .collect()
}

/// Gather the report's input from the store and render it into `book`.
pub fn report_study(
    study: &Study,
    store: &Store,
    fits: &FitReport,
    book: &Path,
) -> Result<Rendered, Error> {
    render_chapter(study, store, fits, book, book)
}

/// [`report_study`] into `book`, with the chapter's paths told as for the book `seen_from`
/// (a fresh render compared with a published chapter writes elsewhere but must read the same).
pub fn render_chapter(
    study: &Study,
    store: &Store,
    fits: &FitReport,
    book: &Path,
    seen_from: &Path,
) -> Result<Rendered, Error> {
    let input = gather(study, store, fits, seen_from)?;
    render(&input, book).map_err(|e| match e {
        crate::report::ReportError::Template { .. }
        | crate::report::ReportError::BrokenLink { .. } => Error::Input(e.to_string()),
        _ => Error::Io(e.to_string()),
    })
}

/// The report's input from the store: runs, curves, data, the final run, the manifest.
fn gather(
    study: &Study,
    store: &Store,
    fits: &FitReport,
    seen_from: &Path,
) -> Result<Input, Error> {
    let internal = Error::Io;
    let (runs, curve_list, records, data, comparison) = match &study.source {
        Source::Train(training) => {
            let specs = super::transfer::all_specs(study, store)?;
            let collected = collect::collect(store, &specs).map_err(|e| internal(e.to_string()))?;
            let mut runs = run_rows(&collected.runs).map_err(|e| internal(e.to_string()))?;
            // A learning-rate sweep's runs that are not their point's best are shown, not fitted.
            if let Some(h) = &fits.hyper {
                for r in &mut runs {
                    r.selected = h.points.iter().any(|p| p.run == r.name);
                }
            }
            let curve_list = curves(&collected.curves).map_err(|e| internal(e.to_string()))?;
            let records: Vec<RunResult> = specs.iter().filter_map(|s| record(store, s)).collect();
            // Every metric a run recorded (a task's, an external trainer's own), by key.
            for r in &mut runs {
                if let Some(rec) = records.iter().find(|x| x.key == r.key) {
                    r.metrics.clone_from(&rec.metrics);
                }
            }
            // The data's entropy rate as the trained runs recorded it, else computed from the
            // data itself (mock runs record none: their numbers do not come from the data).
            let entropy = records
                .iter()
                .find_map(|r| {
                    Some((
                        r.data_entropy_nats?,
                        r.data_entropy_stderr.unwrap_or(f64::NAN),
                    ))
                })
                .or_else(|| training.data.entropy(study.seed));
            let data = DataCtx {
                source: training.data.kind().to_string(),
                description: training.data.describe(),
                vocab: Some(training.data.vocab()),
                entropy: entropy.map(|e| e.0),
                entropy_stderr: entropy.map(|e| e.1),
                val_entropy: records.iter().find_map(|r| r.val_entropy_nats),
            };
            let comparison = super::compare::compare(study, &specs, store, fits)?;
            (runs, curve_list, records, data, comparison)
        }
        Source::Import(spec) => {
            let rows = study_rows(study, store)?.rows;
            let data = DataCtx {
                source: "imported".into(),
                description: format!("imported results from `{}`", spec.path.display()),
                vocab: None,
                entropy: None,
                entropy_stderr: None,
                val_entropy: None,
            };
            (imported_rows(&rows), Vec::new(), Vec::new(), data, None)
        }
    };
    let (decision, final_plan) = final_decision(study, fits)?;
    let mut all_records: Vec<&RunResult> = records.iter().collect();
    // The final run, its baseline and its batch neighbour, in that order.
    let final_records: Option<Vec<Option<RunResult>>> = final_plan
        .as_ref()
        .map(|p| p.specs().iter().map(|s| record(store, s)).collect());
    let final_run: Option<FinalCtx> = final_plan.as_ref().map(|p| {
        let r = final_records.as_ref().expect("set with the plan");
        let at = |i: usize| r.get(i).and_then(Option::as_ref);
        final_ctx(p, at(0), at(1), at(2), fits)
    });
    if let Some(r) = &final_records {
        all_records.extend(r.iter().flatten());
    }
    let manifest = Manifest::new(study, &all_records, fits.fit_version, seen_from);
    // The final run's verdict (skipped, or placed by a reduced law) opens the chapter with
    // the fits' own warnings; `fits.json` is the fits alone.
    let mut fits = fits.clone();
    if let Some(w) = super::final_target::warning(&decision) {
        fits.warning_codes.push(w.code.clone());
        if crate::fit::diagnose::questions_the_law(&w.code) {
            fits.questioning_codes.push(w.code.clone());
        }
        fits.warnings.push(w);
    }
    Ok(Input {
        comparison,
        study: study.clone(),
        data,
        runs,
        curves: curve_list,
        fits,
        final_run,
        manifest,
    })
}

/// The study's `checks:` on its records and `fits` (nothing is rendered or written).
pub fn evaluate_checks(
    study: &Study,
    store: &Store,
    fits: &FitReport,
) -> Result<Vec<crate::report::template::CheckResult>, Error> {
    Ok(crate::report::checks(&gather(
        study,
        store,
        fits,
        Path::new("book"),
    )?))
}
