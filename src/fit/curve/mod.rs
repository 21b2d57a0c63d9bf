//! Whole-curve laws: every run's loss along the way, under the learning rate each step had,
//! not only its last point.
//!
//! - **Multi-power** (Luo et al., ICLR 2025): L(t) = L₀ + A·S₁(t)^−α − B·Σ_{k≤t}
//!   (η_{k−1} − η_k)·G(η_k^−γ·S_k(t)), G(x) = 1 − (C·x + 1)^−β, with S₁ the area under the
//!   schedule (its warmup included: the paper's S₁ + S_W) and S_k(t) = Σ_{τ=k}^{t} η_τ.
//! - **Annealing** (Tissue et al. 2024): L(t) = L₀ + A·S₁^−α − C·S₂, S₂ the annealing area
//!   (momentum λ = 0.999 of the learning rate's decrease).
//!
//! A law is fitted per group — one size, and one learning rate where the study sweeps it — on
//! the validation points after the burn-in and, when asked (`train_loss: true`) and the data
//! never repeat, the logged training losses in bins (with one fitted offset: a fixed
//! validation sample sits a constant apart from fresh batches). Validation points alone are
//! the default: on the reference study the binned training losses, steep and noisy early in
//! each run, raised the held-out error (mean 0.87 % against 0.65 % without them, worst
//! 22 % against 13 %: `scalebook fit` on it with and without `train_loss: true`). Objective and search:
//! [`solve`]. Every fit is checked on points no fitted run contains ([`heldout`]); the
//! curve-informed L(N, D) is [`informed`].

pub mod features;
pub mod heldout;
pub mod informed;
pub mod solve;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use super::options::{CurveForm, CurveRequest};
use features::Schedule;
use solve::{Obs, Prepared};

/// A group's schedule for a run of `steps` steps: the learning rate of each update and how
/// many of them warm up (the study's schedule at the group's learning rate).
pub type ScheduleFn = Arc<dyn Fn(u64) -> (Vec<f64>, usize) + Send + Sync>;

/// One run's curve as the law reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveRun {
    pub name: String,
    /// The planned learning rate of update 1, 2, ….
    pub lrs: Vec<f64>,
    /// Updates that warm up.
    pub warmup: usize,
    /// Validation losses: (updates done, loss).
    pub val: Vec<(u64, f64)>,
    /// Logged training losses: (updates done before the batch, loss); empty where the data
    /// repeat.
    pub train: Vec<(u64, f64)>,
    /// Tokens per step.
    pub step_tokens: f64,
    /// The independent unit it belongs to: its trunk for a branch, else itself.
    pub unit: String,
    /// Steps it shares with the other runs of its unit (a branch's branch point; its length
    /// otherwise).
    pub shared: u64,
    /// Never fitted, only predicted (the independent runs a branch study compares with).
    pub probe: bool,
}

impl CurveRun {
    pub fn steps(&self) -> u64 {
        self.lrs.len() as u64
    }
}

/// Runs of one size (and learning rate) with the schedule its runs follow.
#[derive(Clone)]
pub struct CurveGroup {
    /// `l2-d32` or `l2-d32 lr 3e-3`.
    pub name: String,
    /// The size's name in the study.
    pub size: String,
    pub n: f64,
    pub lr: f64,
    pub runs: Vec<CurveRun>,
    pub schedule: ScheduleFn,
    pub step_tokens: f64,
}

impl std::fmt::Debug for CurveGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveGroup")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("n", &self.n)
            .field("lr", &self.lr)
            .field("runs", &self.runs)
            .finish_non_exhaustive()
    }
}

/// How to fit: the study's request, and the seed its resamples draw from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurveOptions {
    pub request: CurveRequest,
    pub seed: u64,
}

/// A fitted curve law.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurveParams {
    #[serde(rename = "L0")]
    pub l0: f64,
    #[serde(rename = "A")]
    pub a: f64,
    pub alpha: f64,
    /// B (multi-power), or C (annealing: the coefficient of S₂).
    #[serde(rename = "B")]
    pub b: f64,
    pub beta: Option<f64>,
    pub gamma: Option<f64>,
    #[serde(rename = "C")]
    pub c: Option<f64>,
    /// Mean training loss minus validation loss at the same step.
    pub train_offset: f64,
    /// Root-mean-square relative residual of the fitted points.
    pub rms_rel: f64,
    pub points: usize,
}

impl CurveParams {
    fn exponents(&self) -> solve::Exponents {
        [
            self.alpha,
            self.beta.unwrap_or(0.0),
            self.gamma.unwrap_or(0.0),
            self.c.unwrap_or(0.0),
        ]
    }

    /// Validation loss after each of `steps` (ascending) under `lrs` (`warmup` rising).
    pub fn predict(
        &self,
        form: CurveForm,
        lrs: &[f64],
        warmup: usize,
        steps: &[u64],
    ) -> Option<Vec<f64>> {
        let s = Schedule::read(lrs, warmup, steps).ok()?;
        Some(self.at(form, &s))
    }

    fn at(&self, form: CurveForm, s: &Schedule) -> Vec<f64> {
        let pow = match form {
            CurveForm::MultiPower => s.eta_pow(self.gamma.unwrap_or(0.0)),
            CurveForm::Annealing => Vec::new(),
        };
        (0..s.steps.len())
            .map(|i| {
                let drop = match form {
                    CurveForm::MultiPower => {
                        s.drop_sum(i, self.c.unwrap_or(0.0), self.beta.unwrap_or(0.0), &pow)
                    }
                    CurveForm::Annealing => s.annealing[i],
                };
                self.l0 + self.a * s.area[i].powf(-self.alpha) - self.b * drop
            })
            .collect()
    }
}

/// One group's law.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupLaw {
    pub group: String,
    /// The size's name in the study.
    pub size: String,
    pub n: f64,
    pub lr: f64,
    /// Tokens per optimizer step.
    pub step_tokens: f64,
    /// The runs it was fitted on.
    pub runs: Vec<String>,
    #[serde(flatten)]
    pub params: CurveParams,
}

/// A run the law could not use, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unusable {
    pub run: String,
    pub reason: String,
}

/// Everything `law: curve` found (`fits.curve`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveReport {
    pub form: CurveForm,
    pub burn_in: f64,
    /// Whether binned training losses were fitted besides the validation points.
    pub train_loss: bool,
    pub groups: Vec<GroupLaw>,
    pub heldout: Vec<heldout::HeldOut>,
    /// Mean over held-out runs of their mean relative error.
    pub heldout_mean: Option<f64>,
    /// The worst relative error of any held-out point.
    pub heldout_worst: Option<f64>,
    pub unusable: Vec<Unusable>,
    pub informed: Option<informed::InformedReport>,
}

/// The held-out error the law is trusted within: mean and worst, relative to the final loss.
pub const HELDOUT_TARGET: [f64; 2] = [0.005, 0.01];

/// Most validation points read per run after the burn-in (evenly thinned).
const MAX_VAL_PER_RUN: usize = 32;
/// Bins of logged training losses per run after the burn-in.
const TRAIN_BINS: usize = 16;

/// A run's observations after the burn-in: its validation points (at most
/// [`MAX_VAL_PER_RUN`], evenly thinned) and its training losses averaged in [`TRAIN_BINS`]
/// bins of consecutive logged points.
pub fn observations(run: &CurveRun, options: &CurveOptions) -> Vec<Obs> {
    let cut = (options.request.burn_in * run.steps() as f64).floor() as u64;
    let val: Vec<(u64, f64)> = run
        .val
        .iter()
        .copied()
        .filter(|(s, l)| *s > cut && *s >= 1 && l.is_finite())
        .collect();
    let mut obs: Vec<Obs> = thin(&val, MAX_VAL_PER_RUN)
        .into_iter()
        .map(|(step, loss)| Obs {
            step,
            loss,
            train: false,
        })
        .collect();
    let train: Vec<&(u64, f64)> = run
        .train
        .iter()
        .filter(|(s, l)| options.request.train_loss && *s > cut && *s >= 1 && l.is_finite())
        .collect();
    if !train.is_empty() {
        let bins = TRAIN_BINS.min(train.len());
        let per = train.len().div_ceil(bins);
        for chunk in train.chunks(per) {
            let n = chunk.len() as f64;
            let step = chunk.iter().map(|p| p.0 as f64).sum::<f64>() / n;
            obs.push(Obs {
                step: step.round() as u64,
                loss: chunk.iter().map(|p| p.1).sum::<f64>() / n,
                train: true,
            });
        }
    }
    obs.sort_by_key(|o| o.step);
    obs
}

fn thin(points: &[(u64, f64)], most: usize) -> Vec<(u64, f64)> {
    if points.len() <= most {
        return points.to_vec();
    }
    // Evenly spaced, always keeping the last point.
    (0..most)
        .map(|i| {
            points[(i * (points.len() - 1))
                .div_ceil(most - 1)
                .min(points.len() - 1)]
        })
        .collect()
}

/// Validation points a run needs after the burn-in.
pub const MIN_VAL_POINTS: usize = 3;

/// A run ready for the solver, or why it cannot be used.
pub fn prepare(run: &CurveRun, options: &CurveOptions) -> Result<Prepared, String> {
    let burn_in = options.request.burn_in;
    let obs = observations(run, options);
    let val = obs.iter().filter(|o| !o.train).count();
    if val < MIN_VAL_POINTS {
        return Err(format!(
            "{val} validation point(s) after the burn-in ({:.0} % of its {} steps); the curve \
             law needs {MIN_VAL_POINTS}",
            burn_in * 100.0,
            run.steps()
        ));
    }
    let steps: Vec<u64> = obs.iter().map(|o| o.step).collect();
    let schedule = Schedule::read(&run.lrs, run.warmup, &steps).map_err(|e| e.to_string())?;
    Ok(Prepared { obs, schedule })
}

/// Fit every group and check each fit on what it did not see.
pub fn fit(groups: &[CurveGroup], options: &CurveOptions) -> CurveReport {
    use rayon::prelude::*;
    // Groups are independent: fitted in parallel, gathered in order.
    let outcomes: Vec<Outcome> = groups
        .par_iter()
        .enumerate()
        .map(|(gi, g)| fit_group(gi, g, options))
        .collect();
    let mut report = CurveReport {
        form: options.request.form,
        burn_in: options.request.burn_in,
        train_loss: options.request.train_loss,
        groups: Vec::new(),
        heldout: Vec::new(),
        heldout_mean: None,
        heldout_worst: None,
        unusable: Vec::new(),
        informed: None,
    };
    let mut fitted: Vec<informed::Fitted> = Vec::new();
    for o in outcomes {
        report.unusable.extend(o.unusable);
        report.heldout.extend(o.heldout);
        report.groups.extend(o.law);
        fitted.extend(o.fitted);
    }
    (report.heldout_mean, report.heldout_worst) = heldout::summary(&report.heldout);
    report.informed = options
        .request
        .informed
        .then(|| informed::fit(groups, &fitted, options))
        .flatten();
    report
}

/// What one group contributes to the report.
struct Outcome {
    unusable: Vec<Unusable>,
    law: Option<GroupLaw>,
    heldout: Vec<heldout::HeldOut>,
    fitted: Option<informed::Fitted>,
}

fn fit_group(gi: usize, g: &CurveGroup, options: &CurveOptions) -> Outcome {
    let mut out = Outcome {
        unusable: Vec::new(),
        law: None,
        heldout: Vec::new(),
        fitted: None,
    };
    let mut usable = Vec::new();
    for run in &g.runs {
        match prepare(run, options) {
            Ok(p) => usable.push((run, p)),
            Err(why) => out.unusable.push(Unusable {
                run: run.name.clone(),
                reason: why,
            }),
        }
    }
    let train: Vec<&Prepared> = usable
        .iter()
        .filter(|(r, _)| !r.probe)
        .map(|(_, p)| p)
        .collect();
    if train.is_empty() {
        return out;
    }
    let Some(params) = solve::fit(
        options.request.form,
        &train,
        &solve::starts(options.request.form),
        300,
    ) else {
        for (r, _) in usable.iter().filter(|(r, _)| !r.probe) {
            out.unusable.push(Unusable {
                run: r.name.clone(),
                reason: format!(
                    "the {} law could not be fitted to group {}",
                    options.request.form, g.name
                ),
            });
        }
        return out;
    };
    let runs: Vec<&CurveRun> = usable.iter().map(|(r, _)| *r).collect();
    out.heldout = heldout::check(g, &runs, options, &params);
    out.law = Some(GroupLaw {
        group: g.name.clone(),
        size: g.size.clone(),
        n: g.n,
        lr: g.lr,
        step_tokens: g.step_tokens,
        runs: usable
            .iter()
            .filter(|(r, _)| !r.probe)
            .map(|(r, _)| r.name.clone())
            .collect(),
        params,
    });
    let prepared = usable
        .into_iter()
        .filter(|(r, _)| !r.probe)
        .map(|(r, p)| (r.unit.clone(), p))
        .collect();
    out.fitted = Some((gi, params, prepared));
    out
}

impl std::fmt::Display for CurveForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CurveForm::MultiPower => "multi-power",
            CurveForm::Annealing => "annealing",
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
