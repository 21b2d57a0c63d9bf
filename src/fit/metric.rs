//! Downstream error from loss (Gadre et al. 2024, eq. 5): the mean top-1 error over a set of
//! tasks as a function of the validation loss, Err(L) = ε − k·exp(−γ·L) — error falls toward
//! ε − k·e^(−γL) as the loss falls, and saturates at ε (chance, roughly) as the loss grows.
//!
//! Fitted by least squares in Err, the paper's objective, by variable projection: for a fixed
//! γ, Err is linear in (ε, k), so Σ(Êrr − Err)² is minimised over them exactly (2×2 normal
//! equations), and only γ is searched — a grid of γ ∈ {0.02, 0.04, …, 8}, then L-BFGS in γ
//! from its 8 best points with the profile's gradient (the envelope theorem, as for the
//! Chinchilla law's variable projection). Bootstrap intervals refit each resample of the runs
//! the same way.

use serde::{Deserialize, Serialize};

use super::bootstrap::percentile_interval;
use super::lbfgs::{Settings, minimize};
use crate::rng::{SplitMix64, hash2};

/// Err(L) = ε − k·exp(−γ·L).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErrorLaw {
    pub epsilon: f64,
    pub k: f64,
    pub gamma: f64,
}

impl ErrorLaw {
    pub fn error(&self, loss: f64) -> f64 {
        self.epsilon - self.k * (-self.gamma * loss).exp()
    }
}

/// One run: its loss and its measured error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorPoint {
    pub loss: f64,
    pub error: f64,
}

/// The γ grid's step and largest value, and the grid points refined by L-BFGS.
const GRID_STEP: f64 = 0.02;
const GRID_MAX: f64 = 8.0;
const REFINED: usize = 8;

const SEARCH: Settings = Settings {
    max_iterations: 2000,
    gradient_tolerance: 1e-14,
    relative_tolerance: 1e-15,
};

/// The least-squares (ε, k) at `gamma`, the SSE, and dSSE/dγ; `None` when every run has the
/// same loss (ε and k are then not separable).
fn profile(points: &[ErrorPoint], gamma: f64) -> Option<(ErrorLaw, f64, f64)> {
    let m = points.len() as f64;
    let u: Vec<f64> = points.iter().map(|p| -(-gamma * p.loss).exp()).collect();
    let (su, suu) = (u.iter().sum::<f64>(), u.iter().map(|v| v * v).sum::<f64>());
    let sy: f64 = points.iter().map(|p| p.error).sum();
    let suy: f64 = points.iter().zip(&u).map(|(p, v)| p.error * v).sum();
    let det = m * suu - su * su;
    if det.is_nan() || det <= 1e-12 * m * suu {
        return None;
    }
    let k = (m * suy - su * sy) / det;
    let epsilon = (sy - k * su) / m;
    let law = ErrorLaw { epsilon, k, gamma };
    let (mut sse, mut grad) = (0.0, 0.0);
    for p in points {
        let e = (-gamma * p.loss).exp();
        let r = law.error(p.loss) - p.error;
        sse += r * r;
        // ∂Êrr/∂γ = k·L·e^(−γL).
        grad += 2.0 * r * k * p.loss * e;
    }
    (sse.is_finite() && det.is_finite()).then_some((law, sse, grad))
}

/// A fit: the law and Σ(Êrr − Err)².
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorFit {
    pub law: ErrorLaw,
    pub sse: f64,
}

/// The least-squares law; `None` with fewer than 4 runs, a non-finite value, or losses that
/// do not vary.
pub fn fit(points: &[ErrorPoint]) -> Option<ErrorFit> {
    if points.len() < 4
        || points
            .iter()
            .any(|p| !(p.loss.is_finite() && p.error.is_finite()))
    {
        return None;
    }
    let steps = (GRID_MAX / GRID_STEP).round() as usize;
    let mut grid: Vec<(f64, f64)> = (1..=steps)
        .map(|i| i as f64 * GRID_STEP)
        .filter_map(|g| profile(points, g).map(|(_, sse, _)| (sse, g)))
        .collect();
    grid.sort_by(|a, b| a.0.total_cmp(&b.0));
    let f = |x: &[f64; 1]| match profile(points, x[0]).filter(|_| x[0] > 0.0 && x[0] < 50.0) {
        Some((_, sse, g)) => (sse, [g]),
        None => (f64::INFINITY, [0.0]),
    };
    let mut best: Option<(f64, f64)> = None;
    for &(_, start) in grid.iter().take(REFINED) {
        let m = minimize(&f, [start], &SEARCH);
        if m.f.is_finite() && best.is_none_or(|(b, _)| m.f < b) {
            best = Some((m.f, m.x[0]));
        }
    }
    let (_, gamma) = best?;
    let (law, sse, _) = profile(points, gamma)?;
    Some(ErrorFit { law, sse })
}

/// Percentile intervals of ε, k and γ and of the error at each of `at` losses, from
/// `resamples` bootstrap refits (resamples that cannot be fitted are dropped).
pub struct ErrorIntervals {
    pub epsilon: [f64; 2],
    pub k: [f64; 2],
    pub gamma: [f64; 2],
    pub at: Vec<Option<[f64; 2]>>,
}

pub fn intervals(
    points: &[ErrorPoint],
    at: &[f64],
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Option<ErrorIntervals> {
    let laws: Vec<ErrorLaw> = (0..resamples)
        .filter_map(|r| {
            let mut rng = SplitMix64::new(hash2(seed, r as u64));
            let sample: Vec<ErrorPoint> = (0..points.len())
                .map(|_| points[rng.below(points.len() as u64) as usize])
                .collect();
            fit(&sample).map(|f| f.law)
        })
        .collect();
    let interval = |pick: &dyn Fn(&ErrorLaw) -> f64| {
        let mut v: Vec<f64> = laws.iter().map(pick).collect();
        percentile_interval(&mut v, confidence).map(|i| [i.lo, i.hi])
    };
    Some(ErrorIntervals {
        epsilon: interval(&|l| l.epsilon)?,
        k: interval(&|l| l.k)?,
        gamma: interval(&|l| l.gamma)?,
        at: at
            .iter()
            .map(|&loss| interval(&|l| l.error(loss)))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(law: &ErrorLaw, noise: f64) -> Vec<ErrorPoint> {
        noisy(law, noise, 3)
    }

    fn noisy(law: &ErrorLaw, noise: f64, seed: u64) -> Vec<ErrorPoint> {
        let mut rng = SplitMix64::new(seed);
        (0..30)
            .map(|i| {
                let loss = 2.2 + 0.1 * i as f64;
                ErrorPoint {
                    loss,
                    error: law.error(loss) + noise * rng.normal(),
                }
            })
            .collect()
    }

    const TRUTH: ErrorLaw = ErrorLaw {
        epsilon: 0.86,
        k: 2.1,
        gamma: 0.71,
    };

    #[test]
    fn recovers_a_noise_free_law() {
        let f = fit(&points(&TRUTH, 0.0)).unwrap();
        for (got, want) in [(f.law.epsilon, 0.86), (f.law.k, 2.1), (f.law.gamma, 0.71)] {
            assert!((got / want - 1.0).abs() < 1e-6, "{:?}", f.law);
        }
        assert!(f.sse < 1e-20);
    }

    /// On noisy runs no γ of a fine scan (each with its exact ε, k) does better, and over
    /// independent noise draws the bootstrap's 90 % intervals hold the truth about as often
    /// as they say (a percentile bootstrap of 30 runs covers a little less).
    #[test]
    fn is_the_best_of_a_scan_and_its_intervals_cover_the_truth() {
        let pts = points(&TRUTH, 0.005);
        let f = fit(&pts).unwrap();
        let scan = (1..=40_000)
            .filter_map(|i| profile(&pts, i as f64 * 2e-4).map(|p| p.1))
            .fold(f64::INFINITY, f64::min);
        assert!(f.sse <= scan * (1.0 + 1e-9), "{} vs {scan}", f.sse);
        let draws = 20;
        let (mut gamma, mut at) = (0, 0);
        for seed in 0..draws {
            let pts = noisy(&TRUTH, 0.005, 100 + seed);
            let ci = intervals(&pts, &[3.0], 100, 0.9, seed).unwrap();
            gamma += usize::from(ci.gamma[0] <= 0.71 && 0.71 <= ci.gamma[1]);
            let [lo, hi] = ci.at[0].unwrap();
            at += usize::from(lo <= TRUTH.error(3.0) && TRUTH.error(3.0) <= hi);
        }
        // 90 % of 20 is 18; a binomial draw falls to 14 with probability < 2 %.
        assert!(
            gamma >= 14 && at >= 14,
            "γ covered {gamma}/20, Err(3) {at}/20"
        );
    }

    #[test]
    fn refuses_what_it_cannot_fit() {
        assert!(fit(&points(&TRUTH, 0.0)[..3]).is_none());
        let flat: Vec<ErrorPoint> = (0..6)
            .map(|i| ErrorPoint {
                loss: 3.0,
                error: 0.5 + 0.01 * i as f64,
            })
            .collect();
        assert!(fit(&flat).is_none());
        let mut nan = points(&TRUTH, 0.0);
        nan[2].error = f64::NAN;
        assert!(fit(&nan).is_none());
    }
}
