//! The curves a study's `law: curve` reads: every finished run's validation points and (for
//! data that never repeat) its logged training losses, with the learning rate of every step
//! from the run's planned schedule, grouped by size and learning rate. Runs whose recorded
//! learning rate disagrees with the plan are named, not used.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::data::DataSpec;
use crate::fit::curve::{CurveGroup, CurveRun, Unusable};
use crate::record::CurvePoint;
use crate::study::{ParamsConvention, RunSpec};
use crate::train::schedule::LrPlan;

/// Relative difference between a recorded and a planned learning rate that is a disagreement
/// (recorded rates are the plan's, printed with shortest round-trip digits).
const LR_TOLERANCE: f64 = 1e-9;

/// One finished run's curve and spec.
#[derive(Debug, Clone)]
pub struct RunCurve {
    pub spec: RunSpec,
    pub curve: Vec<CurvePoint>,
    /// Never fitted, only predicted (the runs a branch study compares with).
    pub probe: bool,
}

/// How the curve law's tables name a run: the independent runs a branch study compares with
/// share their names with its branches, so they say what they are.
fn display_name(run: &RunCurve) -> String {
    if run.probe {
        format!("{} (independent)", run.spec.name)
    } else {
        run.spec.name.clone()
    }
}

/// The run's planned learning rate for every update (update k + 1 at index k).
fn planned(spec: &RunSpec) -> (Vec<f64>, usize) {
    let plan = spec.lr_plan();
    (
        (0..spec.steps).map(|k| plan.at(k)).collect(),
        plan.warmup() as usize,
    )
}

/// The run as the curve law reads it, or why it cannot be.
fn curve_run(run: &RunCurve) -> Result<CurveRun, String> {
    let spec = &run.spec;
    let (lrs, warmup) = planned(spec);
    for p in &run.curve {
        let Some(&want) = (p.step as usize).checked_sub(1).and_then(|k| lrs.get(k)) else {
            return Err(format!("its curve has step {} of {}", p.step, spec.steps));
        };
        if (p.lr - want).abs() > LR_TOLERANCE * want.abs() {
            return Err(format!(
                "its curve records learning rate {:e} at step {}, its schedule plans {want:e}",
                p.lr, p.step
            ));
        }
    }
    let fresh = matches!(spec.data, DataSpec::Synthetic(_));
    let mut train = Vec::new();
    let mut previous = 0u64;
    for p in &run.curve {
        // A logged training loss is the mean over steps (previous, step], each measured
        // before its own update: updates done (previous + step − 1) / 2 on average.
        if fresh && p.train_loss.is_finite() && p.step > previous {
            train.push(((previous + p.step - 1) / 2, p.train_loss));
        }
        previous = p.step;
    }
    let (unit, shared) = match &spec.identity.branch {
        Some(b) => (b.trunk.clone(), b.decay_start),
        None => (spec.key.clone(), spec.steps),
    };
    Ok(CurveRun {
        name: display_name(run),
        lrs,
        warmup,
        val: run
            .curve
            .iter()
            .filter_map(|p| Some((p.step, p.val_loss?)))
            .collect(),
        train,
        step_tokens: spec.tokens() as f64 / spec.steps.max(1) as f64,
        unit,
        shared,
        probe: run.probe,
    })
}

/// The runs grouped by size (model shape) and learning rate, each group with the schedule
/// an independent run of any length would follow; runs that cannot be read are named.
pub fn groups(
    runs: &[RunCurve],
    swept: bool,
    convention: ParamsConvention,
) -> (Vec<CurveGroup>, Vec<Unusable>) {
    let mut by: BTreeMap<(String, u64), CurveGroup> = BTreeMap::new();
    let mut unusable = Vec::new();
    for run in runs {
        let spec = &run.spec;
        let cr = match curve_run(run) {
            Ok(cr) => cr,
            Err(reason) => {
                unusable.push(Unusable {
                    run: display_name(run),
                    reason,
                });
                continue;
            }
        };
        let lr = spec.identity.train.lr;
        let shape = serde_json::to_string(&spec.identity.model).unwrap_or_default();
        let train = spec.identity.train;
        let entry = by
            .entry((shape, lr.to_bits()))
            .or_insert_with(|| CurveGroup {
                name: if swept {
                    format!("{} lr {lr:e}", spec.size_name)
                } else {
                    spec.size_name.clone()
                },
                n: spec.n(convention),
                lr,
                runs: Vec::new(),
                schedule: Arc::new(move |steps| {
                    let plan = LrPlan::independent(&train, steps);
                    (
                        (0..steps).map(|k| plan.at(k)).collect(),
                        plan.warmup() as usize,
                    )
                }),
                step_tokens: cr.step_tokens,
            });
        entry.runs.push(cr);
    }
    let mut out: Vec<CurveGroup> = by.into_values().collect();
    out.sort_by(|a, b| a.n.total_cmp(&b.n).then(a.lr.total_cmp(&b.lr)));
    (out, unusable)
}

/// Every number of the curves the law reads, for the fits' input digest.
pub fn digest_numbers(runs: &[RunCurve]) -> Vec<f64> {
    let mut out = Vec::new();
    for r in runs {
        out.push(if r.probe { 1.0 } else { 0.0 });
        out.push(r.spec.steps as f64);
        for p in &r.curve {
            out.extend([
                p.step as f64,
                p.train_loss,
                p.val_loss.unwrap_or(f64::NAN),
                p.lr,
            ]);
        }
    }
    out
}
