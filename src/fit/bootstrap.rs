//! Bootstrap intervals (Efron 1979): resample runs with replacement (seeded), refit each
//! resample warm-started from the full-data optimum, and take percentile intervals of every
//! parameter and every derived number (allocation, predicted losses).

use rayon::prelude::*;

use super::chinchilla::{ChinchillaFit, Law, Point, StartGrid, allocate, fit, fit_pruned, refine};
use crate::rng::{SplitMix64, hash2};

/// A percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    pub fn contains(&self, v: f64) -> bool {
        self.lo <= v && v <= self.hi
    }
}

/// Percentile interval of `values` at `confidence` (linear interpolation between order
/// statistics, numpy's default).
pub fn percentile_interval(values: &mut Vec<f64>, confidence: f64) -> Option<Interval> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let pos = p * (values.len() - 1) as f64;
        let (i, frac) = (pos.floor() as usize, pos.fract());
        let next = values[(i + 1).min(values.len() - 1)];
        values[i] + frac * (next - values[i])
    };
    let tail = (1.0 - confidence) / 2.0;
    Some(Interval {
        lo: q(tail),
        hi: q(1.0 - tail),
    })
}

/// Percentile intervals of a vector statistic over resamples of `n` rows: resample i draws
/// row indices from a generator seeded by (seed, i); `stat` returns the statistic of the rows
/// it is given (by index), or `None` when they cannot be fitted. Returns the intervals and
/// how many resamples failed; `None` when every resample failed.
pub fn resample_intervals(
    n: usize,
    resamples: usize,
    confidence: f64,
    seed: u64,
    stat: &(dyn Fn(&[usize]) -> Option<Vec<f64>> + Sync),
) -> Option<(Vec<Interval>, usize)> {
    if n == 0 || resamples == 0 {
        return None;
    }
    let values: Vec<Option<Vec<f64>>> = (0..resamples)
        .into_par_iter()
        .map(|i| {
            let mut rng = SplitMix64::new(hash2(seed, i as u64));
            let rows: Vec<usize> = (0..n).map(|_| rng.below(n as u64) as usize).collect();
            stat(&rows).filter(|v| v.iter().all(|x| x.is_finite()))
        })
        .collect();
    let ok: Vec<&Vec<f64>> = values.iter().flatten().collect();
    let width = ok.first()?.len();
    let intervals = (0..width)
        .map(|k| {
            let mut column: Vec<f64> = ok.iter().map(|v| v[k]).collect();
            percentile_interval(&mut column, confidence)
        })
        .collect::<Option<Vec<_>>>()?;
    Some((intervals, resamples - ok.len()))
}

/// Intervals for the Chinchilla law and its allocations.
#[derive(Debug, Clone, PartialEq)]
pub struct ChinchillaIntervals {
    pub resamples: usize,
    /// Resamples whose refit failed (e.g. a resample with a single model size).
    pub failed: usize,
    pub confidence: f64,
    pub e: Interval,
    pub a: Interval,
    pub b: Interval,
    pub alpha: Interval,
    pub beta: Interval,
    /// Per budget: (N_opt, D_opt, tokens per parameter, loss at the optimum).
    pub allocations: Vec<[Interval; 4]>,
    /// Predicted loss at each requested (N, D).
    pub predictions: Vec<Interval>,
    /// Every successful refit's law, in resample order (bands at any point are percentiles
    /// over these).
    pub laws: Vec<Law>,
    /// Each successful refit's objective (same order as `laws`).
    pub objectives: Vec<f64>,
    pub warnings: Vec<super::diagnose::Warning>,
}

/// How to resample.
#[derive(Debug, Clone, Copy)]
pub struct Resampling<'a> {
    pub resamples: usize,
    pub confidence: f64,
    pub seed: u64,
    /// Refit each resample from every start of this grid instead of warm-starting it from
    /// the full-data optimum.
    pub grid: Option<&'a StartGrid>,
    /// With `grid`: prune it ([`fit_pruned`]).
    pub pruned: bool,
}

/// Bootstrap the approach-3 fit; `budgets` are the compute budgets whose allocation gets
/// intervals, `predict_at` the (N, D) whose predicted loss does. Resample i draws from a
/// generator seeded by (seed, i): the result does not depend on thread scheduling.
pub fn chinchilla(
    points: &[Point],
    delta: f64,
    full: &ChinchillaFit,
    budgets: &[f64],
    predict_at: &[(f64, f64)],
    how: &Resampling,
) -> Option<ChinchillaIntervals> {
    let refit = |sample: &[Point]| {
        match how.grid {
            Some(g) if how.pruned => fit_pruned(sample, delta, g).ok(),
            Some(g) => fit(sample, delta, g).ok(),
            None => refine(sample, delta, full.theta).ok(),
        }
        .map(|f| (f.law, f.objective))
    };
    resampled_law(
        points,
        &full.law,
        budgets,
        predict_at,
        how,
        &refit,
        "chinchilla",
    )
}

/// A refit of a Chinchilla-form law to a resample: the law and its objective, or `None`.
pub type Refit<'a> = &'a (dyn Fn(&[Point]) -> Option<(Law, f64)> + Sync);

/// Bootstrap any Chinchilla-form fit (free E, or E pinned): `refit` fits one resample;
/// `law` is the full-data fit; warnings name `subject`.
pub fn resampled_law(
    points: &[Point],
    law: &Law,
    budgets: &[f64],
    predict_at: &[(f64, f64)],
    how: &Resampling,
    refit: Refit<'_>,
    subject: &str,
) -> Option<ChinchillaIntervals> {
    let &Resampling {
        resamples,
        confidence,
        seed,
        ..
    } = how;
    let n = points.len();
    let fits: Vec<Option<(Law, f64)>> = (0..resamples)
        .into_par_iter()
        .map(|i| {
            let mut rng = SplitMix64::new(hash2(seed, i as u64));
            let sample: Vec<Point> = (0..n)
                .map(|_| points[rng.below(n as u64) as usize])
                .collect();
            refit(&sample)
        })
        .collect();
    let ok: Vec<&(Law, f64)> = fits.iter().flatten().collect();
    if ok.is_empty() {
        return None;
    }
    let interval = |f: &dyn Fn(&Law) -> f64| {
        let mut values: Vec<f64> = ok.iter().map(|x| f(&x.0)).collect();
        percentile_interval(&mut values, confidence)
    };
    let allocations = budgets
        .iter()
        .map(|&c| {
            let a = |g: &dyn Fn(&super::chinchilla::Allocation) -> f64| {
                interval(&|l| g(&allocate(l, c)))
            };
            Some([
                a(&|x| x.n_opt)?,
                a(&|x| x.d_opt)?,
                a(&|x| x.tokens_per_param)?,
                a(&|x| x.loss)?,
            ])
        })
        .collect::<Option<Vec<_>>>()?;
    let predictions = predict_at
        .iter()
        .map(|&(n, d)| interval(&|l| l.loss(n, d)))
        .collect::<Option<Vec<_>>>()?;
    let mut warnings = Vec::new();
    let distinct_runs = {
        let mut keys: Vec<(u64, u64)> = points
            .iter()
            .map(|p| (p.n.to_bits(), p.d.to_bits()))
            .collect();
        keys.sort();
        keys.dedup();
        keys.len()
    };
    let alpha = interval(&|l| l.alpha)?;
    if distinct_runs < 20 && alpha.hi - alpha.lo < 0.01 * law.alpha.abs() {
        warnings.push(super::diagnose::Warning::new(
            "interval_understated",
            &format!("{subject}.alpha"),
            format!(
                "the bootstrap interval for α is under 1 % wide from only {distinct_runs} runs: \
                 with so few runs it understates the real uncertainty"
            ),
            "read the intervals as lower bounds on the uncertainty; 20+ runs make them reliable",
        ));
    }
    let failed = fits.len() - ok.len();
    if failed * 10 > resamples {
        warnings.push(super::diagnose::Warning::new(
            "bootstrap_failures",
            subject,
            format!(
                "{failed} of {resamples} bootstrap refits failed; the intervals rest on the rest"
            ),
            "more runs per size and token count make resamples fittable",
        ));
    }
    Some(ChinchillaIntervals {
        resamples,
        failed,
        confidence,
        e: interval(&|l| l.e)?,
        a: interval(&|l| l.a)?,
        b: interval(&|l| l.b)?,
        alpha,
        beta: interval(&|l| l.beta)?,
        allocations,
        predictions,
        laws: ok.iter().map(|f| f.0).collect(),
        objectives: ok.iter().map(|f| f.1).collect(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::chinchilla::{Law, StartGrid, fit};

    /// The law the synthetic points below are drawn from.
    const TRUTH: Law = Law {
        e: 1.8,
        a: 480.0,
        b: 2100.0,
        alpha: 0.35,
        beta: 0.37,
    };

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let mut v: Vec<f64> = (0..=100).map(f64::from).collect();
        let i = percentile_interval(&mut v, 0.9).unwrap();
        assert!((i.lo - 5.0).abs() < 1e-12 && (i.hi - 95.0).abs() < 1e-12);
    }

    /// Whole-grid refits per resample never end above the warm-started ones (a resample's
    /// optimum can lie in another basin than the full data's: that is what the grid option
    /// is for), and on most resamples they agree.
    #[test]
    fn grid_resamples_agree_with_warm_ones() {
        let truth = TRUTH;
        let mut rng = SplitMix64::new(5);
        let mut points = Vec::new();
        for n in [1e7, 3e7, 1e8, 3e8, 1e9] {
            for d in [1e9, 1e10, 1e11] {
                let loss = truth.loss(n, d) * (0.01 * rng.normal()).exp();
                points.push(Point { n, d, loss });
            }
        }
        let grid = StartGrid::coarse();
        let full = fit(&points, 1e-3, &grid).unwrap();
        let mut how = Resampling {
            resamples: 20,
            confidence: 0.9,
            seed: 3,
            grid: None,
            pruned: false,
        };
        let warm = chinchilla(&points, 1e-3, &full, &[], &[], &how).unwrap();
        how.grid = Some(&grid);
        let cold = chinchilla(&points, 1e-3, &full, &[], &[], &how).unwrap();
        assert_eq!(warm.objectives.len(), cold.objectives.len());
        for (w, c) in warm.objectives.iter().zip(&cold.objectives) {
            assert!(*c <= w * (1.0 + 1e-6), "grid {c} above warm {w}");
        }
        let agree = warm
            .objectives
            .iter()
            .zip(&cold.objectives)
            .filter(|(w, c)| (*w - *c).abs() <= 1e-6 * w.abs())
            .count();
        // Measured: 5 of 20 agree; on the other 15 the grid finds a lower optimum than the
        // warm start reaches.
        assert!(agree >= 3, "{agree} of 20 resamples agree");
        assert!(agree < 20, "the grid never improved on a warm start here");
    }

    /// Points from a known law with seeded noise: the 95 % interval covers each true parameter
    /// in at least 90 % of 50 trials.
    #[test]
    fn intervals_cover_the_truth() {
        let truth = TRUTH;
        let trials = 50;
        let mut covered = [0usize; 5];
        for trial in 0..trials {
            let mut rng = SplitMix64::new(hash2(99, trial));
            let mut points = Vec::new();
            for n in [1e7, 2e7, 5e7, 1e8, 2e8, 5e8, 1e9] {
                for d in [1e9, 3e9, 1e10, 3e10, 1e11] {
                    let loss = truth.loss(n, d) * (0.01 * rng.normal()).exp();
                    points.push(Point { n, d, loss });
                }
            }
            let full = fit(&points, 1e-3, &StartGrid::coarse()).unwrap();
            let how = Resampling {
                resamples: 200,
                confidence: 0.95,
                seed: trial,
                grid: None,
                pruned: false,
            };
            let ci = chinchilla(&points, 1e-3, &full, &[], &[], &how).unwrap();
            for (k, (interval, value)) in [
                (ci.e, truth.e),
                (ci.a, truth.a),
                (ci.b, truth.b),
                (ci.alpha, truth.alpha),
                (ci.beta, truth.beta),
            ]
            .iter()
            .enumerate()
            {
                covered[k] += usize::from(interval.contains(*value));
            }
        }
        for (k, c) in covered.iter().enumerate() {
            assert!(
                *c * 10 >= trials as usize * 9,
                "parameter {k}: covered {c} of {trials}"
            );
        }
    }
}
