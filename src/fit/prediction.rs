//! The interval one new run's loss is predicted to fall in: the law's bootstrap band widened
//! by the scatter of single runs about the law.
//!
//! A bootstrap over the fitted points gives the uncertainty of the law itself — where the
//! *expected* loss at (N, D) lies. One training run lands off that expectation by as much as
//! the fitted runs do: its seed, the learning rate it was tuned to and the law's misfit at
//! that point. The interval a single run is held to is therefore the percentile interval of
//! every bootstrap law's prediction times every fitted run's relative residual,
//! L̂_b(N, D) · exp(r̃_j) — a residual bootstrap prediction interval (Davison & Hinkley 1997,
//! "Bootstrap Methods and their Application", §6.3.3). The residuals r_j = ln L_j − ln L̂(N_j,
//! D_j) are centred and scaled by √(m / (m − k)) for m points and k fitted parameters, so a
//! fit's in-sample residuals, which are smaller than a new run's, are not taken at face value.

use super::chinchilla::{Law, Point};
use super::law::{At, ScalingLaw};

/// ln measured − ln fitted at each point, in the points' order.
pub fn log_residuals(points: &[Point], law: &Law) -> Vec<f64> {
    points
        .iter()
        .map(|p| p.loss.ln() - law.loss(p.n, p.d).ln())
        .collect()
}

/// The residuals a new run may land off the law by: centred, and scaled by √(m / (m − k))
/// for `parameters` = k fitted parameters; `None` with no more points than parameters (no
/// residual degrees of freedom) or a non-finite residual.
fn scatter(residuals: &[f64], parameters: usize) -> Option<Vec<f64>> {
    let m = residuals.len();
    if m <= parameters || residuals.iter().any(|r| !r.is_finite()) {
        return None;
    }
    let mean = residuals.iter().sum::<f64>() / m as f64;
    let inflate = (m as f64 / (m - parameters) as f64).sqrt();
    Some(residuals.iter().map(|r| (r - mean) * inflate).collect())
}

/// The `confidence` interval for one new run's loss at `at`: percentiles of every bootstrap
/// law's prediction times exp(every scaled residual). `None` without bootstrap laws, without
/// residual degrees of freedom, or where no law can predict at `at`.
pub fn one_run<L: ScalingLaw>(
    laws: &[L],
    residuals: &[f64],
    parameters: usize,
    at: &At,
    confidence: f64,
) -> Option<[f64; 2]> {
    let scatter = scatter(residuals, parameters)?;
    let mut values: Vec<f64> = laws
        .iter()
        .filter_map(|l| l.loss(at))
        .flat_map(|mean| scatter.iter().map(move |r| mean * r.exp()))
        .collect();
    super::bootstrap::percentile_interval(&mut values, confidence).map(|i| [i.lo, i.hi])
}

/// [`one_run`] of a Chinchilla-form law at each (N, D) of `at`, for a hold-out's table;
/// `None` when any has no interval.
pub fn one_run_each(
    laws: &[Law],
    residuals: &[f64],
    parameters: usize,
    at: &[(f64, f64)],
    confidence: f64,
) -> Option<Vec<super::bootstrap::Interval>> {
    at.iter()
        .map(|&(n, d)| {
            one_run(laws, residuals, parameters, &At::nd(n, d), confidence)
                .map(|[lo, hi]| super::bootstrap::Interval { lo, hi })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::chinchilla::CHINCHILLA_2022;
    use crate::rng::SplitMix64;

    fn at() -> At<'static> {
        At::nd(1e9, 2e10)
    }

    #[test]
    fn without_scatter_the_interval_is_the_laws_band() {
        let laws: Vec<Law> = (0..101)
            .map(|i| Law {
                e: 1.60 + 0.002 * i as f64,
                ..CHINCHILLA_2022
            })
            .collect();
        let [lo, hi] = one_run(&laws, &[0.0; 8], 5, &at(), 0.9).unwrap();
        let base = CHINCHILLA_2022.loss(1e9, 2e10) - 1.69;
        assert!((lo - (base + 1.61)).abs() < 1e-12, "{lo}");
        assert!((hi - (base + 1.79)).abs() < 1e-12, "{hi}");
    }

    #[test]
    fn residuals_widen_it_by_their_inflated_spread() {
        let law = CHINCHILLA_2022;
        let mean = law.loss(1e9, 2e10);
        // Residuals ±0.01 around a mean of 0.002: centred to ±0.01, inflated by √(10/5).
        let residuals: Vec<f64> = (0..10)
            .map(|i| 0.002 + if i % 2 == 0 { 0.01 } else { -0.01 })
            .collect();
        let [lo, hi] = one_run(&[law], &residuals, 5, &at(), 0.95).unwrap();
        let r = 0.01 * 2f64.sqrt();
        assert!((lo - mean * (-r).exp()).abs() < 1e-12, "{lo}");
        assert!((hi - mean * r.exp()).abs() < 1e-12, "{hi}");
    }

    #[test]
    fn no_interval_without_residual_degrees_of_freedom_or_laws() {
        let law = CHINCHILLA_2022;
        assert_eq!(one_run(&[law], &[0.01; 5], 5, &at(), 0.95), None);
        assert_eq!(
            one_run(&[law], &[0.01, f64::NAN, 0.0], 1, &at(), 0.95),
            None
        );
        assert_eq!(one_run::<Law>(&[], &[0.01; 8], 5, &at(), 0.95), None);
    }

    #[test]
    fn log_residuals_read_measured_against_fitted() {
        let law = CHINCHILLA_2022;
        let p = Point {
            n: 1e8,
            d: 1e9,
            loss: law.loss(1e8, 1e9) * 1.02,
        };
        let r = log_residuals(&[p], &law);
        assert!((r[0] - 1.02f64.ln()).abs() < 1e-12);
    }

    /// Runs scattered about a known law with 1 % log-normal noise: the interval built from
    /// 20 fitted runs' residuals covers close to 95 % of new runs.
    #[test]
    fn covers_new_runs_at_about_its_confidence() {
        let law = CHINCHILLA_2022;
        let mut rng = SplitMix64::new(7);
        let mut normal = || rng.normal();
        let mut covered = 0;
        let trials = 400;
        for _ in 0..trials {
            let residuals: Vec<f64> = (0..20).map(|_| 0.01 * normal()).collect();
            let [lo, hi] = one_run(&[law], &residuals, 5, &at(), 0.95).unwrap();
            let new = law.loss(1e9, 2e10) * (0.01 * normal()).exp();
            covered += usize::from(lo <= new && new <= hi);
        }
        let rate = covered as f64 / trials as f64;
        assert!((0.88..=0.99).contains(&rate), "coverage {rate}");
    }
}
