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

/// Relative difference between a recorded and a planned learning rate that is a disagreement:
/// the engine records the plan's rates exactly; an external trainer's own scheduler may round
/// or compute them another way, by far less than a wrong schedule is off.
const LR_TOLERANCE: f64 = 1e-4;

/// The most steps `--predict` lays out a schedule for (its learning rates take 8 bytes each).
pub const MAX_PREDICT_STEPS: u64 = 10_000_000;

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
    (plan.rates(), plan.warmup() as usize)
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

/// The runs grouped by size (model shape), learning rate and batch size, each group with the
/// schedule an independent run of any length would follow; runs that cannot be read are
/// named.
pub fn groups(
    runs: &[RunCurve],
    swept: bool,
    convention: ParamsConvention,
) -> (Vec<CurveGroup>, Vec<Unusable>) {
    let mut by: BTreeMap<(String, u64, u64), CurveGroup> = BTreeMap::new();
    let mut unusable = Vec::new();
    // A batch sweep: the batch size joins each group's name.
    let batch_swept = runs
        .iter()
        .any(|r| r.spec.identity.train.batch != runs[0].spec.identity.train.batch);
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
            .entry((shape, lr.to_bits(), train.batch))
            .or_insert_with(|| CurveGroup {
                name: match (swept, batch_swept) {
                    (_, true) => format!("{} lr {lr:e} batch {}", spec.size_name, train.batch),
                    (true, false) => format!("{} lr {lr:e}", spec.size_name),
                    (false, false) => spec.size_name.clone(),
                },
                size: spec.size_name.clone(),
                n: spec.n(convention),
                lr,
                runs: Vec::new(),
                schedule: Arc::new(move |steps| {
                    let plan = LrPlan::independent(&train, steps);
                    (plan.rates(), plan.warmup() as usize)
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

/// A final loss the curve law is asked for (`scalebook fit --predict`).
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The size's name in the study.
    pub size: String,
    pub tokens: f64,
    /// `cosine`, `wsd` or `constant` (the study's own schedule when absent).
    pub schedule: Option<String>,
    /// The peak learning rate's group (the best of the size's when absent).
    pub lr: Option<f64>,
    /// Warmup steps, when not the study's fraction of the run's own steps: a branch of a
    /// shared trunk warms up as long as its trunk (WSD with the trunk's warmup).
    pub warmup_steps: Option<u64>,
}

/// The curve law's answer to a [`Query`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    pub size: String,
    pub lr: f64,
    pub schedule: String,
    pub tokens: f64,
    pub steps: u64,
    /// The whole predicted validation curve: (tokens, loss) at every `eval_every` steps and
    /// the last step.
    pub curve: Vec<[f64; 2]>,
    pub loss: f64,
}

impl Query {
    /// `size=l4-d128,tokens=6.4e6[,schedule=wsd][,lr=3e-3][,warmup_steps=40]`.
    pub fn parse(text: &str) -> Result<Query, String> {
        let mut q = Query {
            size: String::new(),
            tokens: f64::NAN,
            schedule: None,
            lr: None,
            warmup_steps: None,
        };
        for part in text.split(',') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not key=value"))?;
            let number = || {
                value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .ok_or_else(|| format!("{key} `{value}` is not a positive number"))
            };
            match key.trim() {
                "size" => q.size = value.trim().to_string(),
                "tokens" => q.tokens = number()?,
                "lr" => q.lr = Some(number()?),
                "warmup_steps" => {
                    q.warmup_steps = Some(value.trim().parse::<u64>().map_err(|_| {
                        format!("warmup_steps `{value}` is not a whole number of steps")
                    })?)
                }
                "schedule" => match value.trim() {
                    s @ ("cosine" | "wsd" | "constant") => q.schedule = Some(s.to_string()),
                    other => {
                        return Err(format!(
                            "schedule `{other}`: give `cosine`, `wsd` or `constant`"
                        ));
                    }
                },
                other => {
                    return Err(format!(
                        "unknown key `{other}` (give size, tokens, and optionally schedule, lr \
                         and warmup_steps)"
                    ));
                }
            }
        }
        if q.size.is_empty() || q.tokens.is_nan() {
            return Err("give at least size=… and tokens=…".into());
        }
        Ok(q)
    }
}

/// The study's training settings under another schedule kind (the study's own knobs where it
/// has them, the study file's defaults otherwise: cosine to 10 % of the peak, a 20 % WSD decay).
fn with_schedule(train: &crate::study::TrainSpec, kind: Option<&str>) -> crate::study::TrainSpec {
    use crate::study::Schedule;
    let min = match train.schedule {
        Schedule::Cosine { min_lr_ratio } | Schedule::Wsd { min_lr_ratio, .. } => min_lr_ratio,
        Schedule::Constant => 0.1,
    };
    let schedule = match (kind, train.schedule) {
        (None, s) => s,
        (Some("cosine"), _) => Schedule::Cosine { min_lr_ratio: min },
        (Some("wsd"), Schedule::Wsd { decay, .. }) => Schedule::Wsd {
            decay,
            min_lr_ratio: min,
        },
        (Some("wsd"), _) => Schedule::Wsd {
            decay: 0.2,
            min_lr_ratio: min,
        },
        _ => Schedule::Constant,
    };
    crate::study::TrainSpec { schedule, ..*train }
}

fn schedule_name(s: crate::study::Schedule) -> &'static str {
    match s {
        crate::study::Schedule::Cosine { .. } => "cosine",
        crate::study::Schedule::Wsd { .. } => "wsd",
        crate::study::Schedule::Constant => "constant",
    }
}

/// Answer `queries` from the fitted curve laws; an unanswerable query is an error naming it.
pub fn predict(
    train: &crate::study::TrainSpec,
    report: &crate::fit::curve::CurveReport,
    queries: &[Query],
) -> Result<Vec<Prediction>, String> {
    let mut out = Vec::new();
    for q in queries {
        let laws: Vec<&crate::fit::curve::GroupLaw> = report
            .groups
            .iter()
            .filter(|g| g.size == q.size)
            .filter(|g| q.lr.is_none_or(|lr| (g.lr - lr).abs() <= 1e-9 * lr))
            .collect();
        if laws.is_empty() {
            let mut sizes: Vec<&str> = report.groups.iter().map(|g| g.size.as_str()).collect();
            sizes.dedup();
            return Err(format!(
                "size `{}`{}: no curve law fitted (fitted: {})",
                q.size,
                q.lr.map(|lr| format!(" at lr {lr:e}")).unwrap_or_default(),
                if sizes.is_empty() {
                    "none".to_string()
                } else {
                    sizes.join(", ")
                }
            ));
        }
        let mut best: Option<Prediction> = None;
        for law in laws {
            let spec = with_schedule(
                &crate::study::TrainSpec {
                    lr: law.lr,
                    ..*train
                },
                q.schedule.as_deref(),
            );
            let step_tokens = law.step_tokens;
            let steps = ((q.tokens / step_tokens).round() as u64).max(1);
            if steps > MAX_PREDICT_STEPS {
                return Err(format!(
                    "tokens {:e} is {steps} steps of {step_tokens} tokens for size `{}`; \
                     at most {MAX_PREDICT_STEPS} steps are laid out",
                    q.tokens, q.size
                ));
            }
            let plan = match q.warmup_steps {
                Some(w) if w >= steps => {
                    return Err(format!(
                        "warmup_steps {w} is not shorter than the run's {steps} steps"
                    ));
                }
                Some(w) => LrPlan::with_warmup(&spec, steps, w),
                None => LrPlan::independent(&spec, steps),
            };
            let lrs = plan.rates();
            let mut at: Vec<u64> = (1..=steps)
                .filter(|s| s % spec.eval_every.max(1) == 0)
                .collect();
            if at.last() != Some(&steps) {
                at.push(steps);
            }
            let Some(losses) = law
                .params
                .predict(report.form, &lrs, plan.warmup() as usize, &at)
            else {
                return Err(format!("size `{}`: the schedule cannot be read", q.size));
            };
            let p = Prediction {
                size: q.size.clone(),
                lr: law.lr,
                schedule: schedule_name(spec.schedule).into(),
                tokens: steps as f64 * step_tokens,
                steps,
                curve: at
                    .iter()
                    .zip(&losses)
                    .map(|(&s, &l)| [s as f64 * step_tokens, l])
                    .collect(),
                loss: *losses.last().unwrap_or(&f64::NAN),
            };
            if best.as_ref().is_none_or(|b| p.loss < b.loss) {
                best = Some(p);
            }
        }
        out.extend(best);
    }
    Ok(out)
}
