//! The curve-informed L(N, D): the Chinchilla law fitted to what each size's curve laws
//! predict for independent runs at a dense set of token counts inside the size's trained
//! range (the study's schedule, each learning rate's law, the best of them per D), rather than
//! to one endpoint per run.
//!
//! Intervals come from a nested bootstrap that never resamples single points or single
//! branches: each resample redraws, per group, its independent units — runs, or trunks with
//! all their branches — with replacement and refits the curve law; a group with one unit (one
//! trunk, or one run) has nothing to redraw, so its curves are rebuilt from the fitted law
//! plus its own residuals resampled in blocks of [`BLOCK`] consecutive observations (a moving
//! block bootstrap, which keeps the curve's correlation). Then the token grid is predicted
//! again and L(N, D) refitted from the full-data optimum. With ≤ 3 units per group the
//! redraws are few (3 runs give 10 distinct multisets): the intervals say how far the law
//! moves between those, no more.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::solve::{self, Obs, Prepared};
use super::{CurveGroup, CurveOptions, CurveParams};
use crate::fit::bootstrap::percentile_interval;
use crate::fit::chinchilla::{self, Law, Point, StartGrid};
use crate::fit::law::{At, CurveLaw, ScalingLaw};
use crate::fit::report::ParamIntervals;
use crate::rng::{SplitMix64, hash2};

/// Token counts predicted per size.
pub const GRID_PER_SIZE: usize = 8;

/// Observations per resampled block of residuals.
pub const BLOCK: usize = 4;

/// Huber δ of the L(N, D) fit (the endpoint law's default).
const DELTA: f64 = 1e-3;

/// The curve-informed law (`fits.curve.informed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InformedReport {
    #[serde(flatten)]
    pub law: Law,
    /// Percentile intervals: E, A, B, alpha, beta.
    pub ci: Option<ParamIntervals>,
    pub confidence: f64,
    pub bootstrap_resamples: usize,
    pub bootstrap_failures: usize,
    /// The predicted points it was fitted on: (N, D, loss).
    pub points: Vec<[f64; 3]>,
    pub sizes: usize,
    /// Groups whose intervals come from block-resampled residuals (one unit each).
    pub residual_groups: Vec<String>,
    /// Parameter by parameter against the endpoint law (filled where both exist).
    #[serde(default)]
    pub against_endpoint: Vec<Agreement>,
}

/// One parameter of both laws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub param: String,
    pub endpoint: f64,
    pub endpoint_ci: Option<[f64; 2]>,
    pub informed: f64,
    pub informed_ci: Option<[f64; 2]>,
    /// Whether the two intervals overlap (absent without both).
    pub overlap: Option<bool>,
}

/// A fitted group: its index in the input, its law, and its prepared runs with their units.
pub type Fitted = (usize, CurveParams, Vec<(String, Prepared)>);

/// The predicted points of every size from the groups' laws (best learning rate per D).
fn grid_points(
    groups: &[CurveGroup],
    laws: &[(usize, CurveParams)],
    form: super::CurveForm,
) -> Vec<Point> {
    let mut sizes: Vec<f64> = laws.iter().map(|(g, _)| groups[*g].n).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    let mut out = Vec::new();
    for n in sizes {
        let of_size: Vec<&(usize, CurveParams)> =
            laws.iter().filter(|(g, _)| groups[*g].n == n).collect();
        let tokens = |g: &CurveGroup| {
            g.runs
                .iter()
                .filter(|r| !r.probe)
                .map(|r| r.steps() as f64 * r.step_tokens)
                .collect::<Vec<f64>>()
        };
        let all: Vec<f64> = of_size
            .iter()
            .flat_map(|(g, _)| tokens(&groups[*g]))
            .collect();
        let (lo, hi) = (
            all.iter().copied().fold(f64::INFINITY, f64::min),
            all.iter().copied().fold(0.0, f64::max),
        );
        if !(lo.is_finite() && hi > 0.0) {
            continue;
        }
        for i in 0..GRID_PER_SIZE {
            let d = if hi > lo {
                lo * (hi / lo).powf(i as f64 / (GRID_PER_SIZE - 1) as f64)
            } else if i == 0 {
                lo
            } else {
                break;
            };
            let best = of_size
                .iter()
                .filter_map(|(g, law)| {
                    let g = &groups[*g];
                    let steps = ((d / g.step_tokens).round() as u64).max(1);
                    let (lrs, warmup) = (g.schedule)(steps);
                    let d = steps as f64 * g.step_tokens;
                    let at = At {
                        n,
                        d,
                        flops: 6.0 * n * d,
                        schedule: Some((&lrs, warmup)),
                    };
                    let loss = CurveLaw { form, params: *law }.loss(&at)?;
                    Some((loss, steps as f64 * g.step_tokens))
                })
                .filter(|(l, _)| l.is_finite() && *l > 0.0)
                .min_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((loss, d)) = best {
                out.push(Point { n, d, loss });
            }
        }
    }
    out
}

/// The curve-informed law and its nested-bootstrap intervals.
pub fn fit(
    groups: &[CurveGroup],
    fitted: &[Fitted],
    options: &CurveOptions,
) -> Option<InformedReport> {
    let laws: Vec<(usize, CurveParams)> = fitted.iter().map(|(g, l, _)| (*g, *l)).collect();
    let points = grid_points(groups, &laws, options.request.form);
    if distinct_sizes(&points) < MIN_SIZES {
        return None;
    }
    let full = chinchilla::fit(&points, DELTA, &StartGrid::full()).ok()?;
    let residual_groups: Vec<String> = fitted
        .iter()
        .filter(|(_, _, runs)| units(runs) < 2)
        .map(|(g, _, _)| groups[*g].name.clone())
        .collect();
    let resamples = options.request.bootstrap as usize;
    let refits: Vec<Option<Law>> = (0..resamples)
        .into_par_iter()
        .map(|i| {
            let mut rng = SplitMix64::new(hash2(options.seed ^ 0xC0FFEE, i as u64));
            let laws: Vec<(usize, CurveParams)> = fitted
                .iter()
                .filter_map(|(g, law, runs)| Some((*g, resample(options, law, runs, &mut rng)?)))
                .collect();
            let sample = grid_points(groups, &laws, options.request.form);
            chinchilla::refine(&sample, DELTA, full.theta)
                .ok()
                .map(|f| f.law)
        })
        .collect();
    let ok: Vec<Law> = refits.iter().flatten().copied().collect();
    let interval = |f: fn(&Law) -> f64| {
        let mut v: Vec<f64> = ok.iter().map(f).collect();
        percentile_interval(&mut v, options.request.confidence).map(|i| [i.lo, i.hi])
    };
    let ci = (|| {
        Some(ParamIntervals {
            e: interval(|l| l.e)?,
            a: interval(|l| l.a)?,
            b: interval(|l| l.b)?,
            alpha: interval(|l| l.alpha)?,
            beta: interval(|l| l.beta)?,
        })
    })();
    let sizes = distinct_sizes(&points);
    Some(InformedReport {
        law: full.law,
        ci,
        confidence: options.request.confidence,
        bootstrap_resamples: ok.len(),
        bootstrap_failures: resamples - ok.len(),
        points: points.iter().map(|p| [p.n, p.d, p.loss]).collect(),
        sizes,
        residual_groups,
        against_endpoint: Vec::new(),
    })
}

/// Sizes a curve-informed law needs: A and α are set by how the loss moves across them.
pub const MIN_SIZES: usize = 3;

fn distinct_sizes(points: &[Point]) -> usize {
    let mut n: Vec<u64> = points.iter().map(|p| p.n.to_bits()).collect();
    n.sort_unstable();
    n.dedup();
    n.len()
}

fn units(runs: &[(String, Prepared)]) -> usize {
    let mut u: Vec<&str> = runs.iter().map(|(u, _)| u.as_str()).collect();
    u.sort_unstable();
    u.dedup();
    u.len()
}

/// One group's curve law refitted on a resample of its units (or of its residuals' blocks).
fn resample(
    options: &CurveOptions,
    law: &CurveParams,
    runs: &[(String, Prepared)],
    rng: &mut SplitMix64,
) -> Option<CurveParams> {
    let mut names: Vec<&str> = runs.iter().map(|(u, _)| u.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let sample: Vec<Prepared> = if names.len() >= 2 {
        (0..names.len())
            .flat_map(|_| {
                let unit = names[rng.below(names.len() as u64) as usize];
                runs.iter()
                    .filter(move |(u, _)| u.as_str() == unit)
                    .map(|(_, p)| p.clone())
            })
            .collect()
    } else {
        runs.iter()
            .map(|(_, p)| residual_resample(options, law, p, rng))
            .collect()
    };
    let refs: Vec<&Prepared> = sample.iter().collect();
    solve::fit(options.request.form, &refs, &[law.exponents()], 100)
}

/// The run's fitted curve plus its residuals redrawn in blocks of [`BLOCK`].
fn residual_resample(
    options: &CurveOptions,
    law: &CurveParams,
    run: &Prepared,
    rng: &mut SplitMix64,
) -> Prepared {
    let fit = law.at(options.request.form, &run.schedule);
    let fitted: Vec<f64> = run
        .obs
        .iter()
        .zip(&fit)
        .map(|(o, f)| f + if o.train { law.train_offset } else { 0.0 })
        .collect();
    let resid: Vec<f64> = run
        .obs
        .iter()
        .zip(&fitted)
        .map(|(o, f)| o.loss - f)
        .collect();
    let n = resid.len();
    let mut drawn = Vec::with_capacity(n);
    while drawn.len() < n {
        let start = rng.below(n as u64) as usize;
        drawn.extend((0..BLOCK).map(|k| resid[(start + k) % n]));
    }
    let obs = run
        .obs
        .iter()
        .zip(fitted.iter().zip(&drawn))
        .map(|(o, (f, r))| Obs {
            loss: (f + r).max(1e-9),
            ..*o
        })
        .collect();
    Prepared {
        obs,
        schedule: run.schedule.clone(),
    }
}

/// Every parameter of the curve-informed law beside the endpoint law's.
pub fn against(
    informed: &InformedReport,
    endpoint: &crate::fit::report::ChinchillaReport,
) -> Vec<Agreement> {
    let e = endpoint.law();
    type Pick = fn(&ParamIntervals) -> [f64; 2];
    let rows: [(&str, f64, f64, Pick); 5] = [
        ("E", e.e, informed.law.e, |c| c.e),
        ("A", e.a, informed.law.a, |c| c.a),
        ("B", e.b, informed.law.b, |c| c.b),
        ("alpha", e.alpha, informed.law.alpha, |c| c.alpha),
        ("beta", e.beta, informed.law.beta, |c| c.beta),
    ];
    rows.iter()
        .map(|&(param, end, inf, pick)| {
            let endpoint_ci = endpoint.ci.as_ref().map(|c| match param {
                "E" => c.e,
                "A" => c.a,
                "B" => c.b,
                "alpha" => c.alpha,
                _ => c.beta,
            });
            let informed_ci = informed.ci.as_ref().map(pick);
            let overlap = match (endpoint_ci, informed_ci) {
                (Some(x), Some(y)) => Some(x[0] <= y[1] && y[0] <= x[1]),
                _ => None,
            };
            Agreement {
                param: param.into(),
                endpoint: end,
                endpoint_ci,
                informed: inf,
                informed_ci,
                overlap,
            }
        })
        .collect()
}
