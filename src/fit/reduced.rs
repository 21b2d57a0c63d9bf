//! The laws a grid can support when it cannot pin down all five parameters of
//! L(N, D) = E + A/N^α + B/D^β, compared by AIC:
//!
//! - **free E**: the full law (5 parameters, [`super::chinchilla`]);
//! - **E fixed** at a known floor (the synthetic language's entropy rate): 4 parameters;
//! - **E = 0**: L = A/N^α + B/D^β, the floor-free form (4 parameters).
//!
//! The reduced forms are fitted like approach 3 (Huber δ on ln L with
//! ln L̂ = ln(E + e^(a − α ln N) + e^(b − β ln D)), L-BFGS from a start grid over a, b, α, β),
//! and every form's AIC is n·ln(SSR/n) + 2k on the log residuals (Akaike 1974), the
//! comparison [`super::power`] makes for single-variable laws.

use serde::{Deserialize, Serialize};

use super::chinchilla::{Law, Point};
use super::lbfgs::{Settings, multistart};

/// One candidate law and how well it fits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Candidate {
    /// `free_e`, `fixed_e` or `zero_e`.
    pub form: String,
    pub law: Law,
    /// Parameters fitted (5 or 4).
    pub parameters: usize,
    /// Root mean squared log residual.
    pub rmse_log: f64,
    pub aic: f64,
    /// AIC minus the lowest AIC among the candidates (0 for the preferred one).
    pub delta_aic: f64,
}

/// Huber_δ(r) and its derivative in r: quadratic within δ, linear beyond.
pub(super) fn huber(r: f64, delta: f64) -> (f64, f64) {
    if r.abs() <= delta {
        (0.5 * r * r, r)
    } else {
        (delta * (r.abs() - 0.5 * delta), delta * r.signum())
    }
}

/// Σ Huber_δ(ln L̂ − ln L) with E held fixed, and its gradient in (a, b, α, β).
fn objective(theta: &[f64; 4], e: f64, pts: &[(f64, f64, f64)], delta: f64) -> (f64, [f64; 4]) {
    let [a, b, alpha, beta] = *theta;
    let mut f = 0.0;
    let mut g = [0.0; 4];
    for &(ln_n, ln_d, ln_l) in pts {
        let u = (a - alpha * ln_n).exp();
        let v = (b - beta * ln_d).exp();
        let s = e + u + v;
        let (h, dh) = huber(s.ln() - ln_l, delta);
        f += h;
        g[0] += dh * u / s;
        g[1] += dh * v / s;
        g[2] -= dh * ln_n * u / s;
        g[3] -= dh * ln_d * v / s;
    }
    (f, g)
}

fn logs(points: &[Point]) -> Vec<(f64, f64, f64)> {
    points
        .iter()
        .map(|p| (p.n.ln(), p.d.ln(), p.loss.ln()))
        .collect()
}

/// The four-parameter law with E held at `e`, from a grid of 900 starts (a, b ∈ {0, 5, …, 25},
/// α, β ∈ {0, 0.5, …, 2}); the best objective wins, ties to the earliest start.
pub fn fit_fixed_e(points: &[Point], e: f64, delta: f64) -> Option<(Law, f64)> {
    if points.len() < 4 || !(e >= 0.0 && e.is_finite()) {
        return None;
    }
    let pts = logs(points);
    let f = |t: &[f64; 4]| objective(t, e, &pts, delta);
    let mut starts = Vec::new();
    for a in [0.0, 5.0, 10.0, 15.0, 20.0, 25.0] {
        for b in [0.0, 5.0, 10.0, 15.0, 20.0, 25.0] {
            for alpha in [0.0, 0.5, 1.0, 1.5, 2.0] {
                for beta in [0.0, 0.5, 1.0, 1.5, 2.0] {
                    starts.push([a, b, alpha, beta]);
                }
            }
        }
    }
    let (best_f, x, _) = multistart(&f, &starts, &SEARCH)?;
    let law = Law {
        e,
        a: x[0].exp(),
        b: x[1].exp(),
        alpha: x[2],
        beta: x[3],
    };
    Some((law, best_f))
}

/// The four-parameter law with E held at `e`, refined from `start` (a law with that E): the
/// bootstrap's warm start. `None` when the objective is not finite there.
pub fn refine_fixed_e(points: &[Point], e: f64, delta: f64, start: &Law) -> Option<(Law, f64)> {
    let pts = logs(points);
    let f = |t: &[f64; 4]| objective(t, e, &pts, delta);
    let x0 = [start.a.ln(), start.b.ln(), start.alpha, start.beta];
    let m = super::lbfgs::minimize(&f, x0, &SEARCH);
    m.f.is_finite().then(|| {
        (
            Law {
                e,
                a: m.x[0].exp(),
                b: m.x[1].exp(),
                alpha: m.x[2],
                beta: m.x[3],
            },
            m.f,
        )
    })
}

const SEARCH: Settings = Settings {
    max_iterations: 5000,
    gradient_tolerance: 1e-8,
    relative_tolerance: 1e-12,
};

/// n·ln(SSR/n) + 2k of a law's log residuals, and the RMSE.
pub fn aic(points: &[Point], law: &Law, parameters: usize) -> (f64, f64) {
    let n = points.len() as f64;
    let ssr: f64 = points
        .iter()
        .map(|p| (law.loss(p.n, p.d).ln() - p.loss.ln()).powi(2))
        .sum();
    (
        n * (ssr.max(1e-300) / n).ln() + 2.0 * parameters as f64,
        (ssr / n).sqrt(),
    )
}

/// The free-E law `full` beside the reduced forms (E fixed at `known_e` when given, and
/// E = 0), each with its AIC; ordered as listed, with ΔAIC to the best.
pub fn compare(points: &[Point], full: &Law, known_e: Option<f64>, delta: f64) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut push = |form: &str, law: Law, parameters: usize| {
        let (aic, rmse_log) = aic(points, &law, parameters);
        if aic.is_finite() {
            out.push(Candidate {
                form: form.into(),
                law,
                parameters,
                rmse_log,
                aic,
                delta_aic: 0.0,
            });
        }
    };
    push("free_e", *full, super::chinchilla::PARAMETERS);
    if let Some(e) = known_e
        && let Some((law, _)) = fit_fixed_e(points, e, delta)
    {
        push("fixed_e", law, 4);
    }
    if let Some((law, _)) = fit_fixed_e(points, 0.0, delta) {
        push("zero_e", law, 4);
    }
    let best = out.iter().map(|c| c.aic).fold(f64::INFINITY, f64::min);
    for c in &mut out {
        c.delta_aic = c.aic - best;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn grid(law: &Law, noise: f64, seed: u64) -> Vec<Point> {
        let mut rng = SplitMix64::new(seed);
        let mut out = Vec::new();
        for i in 0..5 {
            for j in 0..5 {
                let n = 1e6 * 4f64.powi(i);
                let d = 2e7 * 4f64.powi(j);
                let eps = 1.0 + noise * (2.0 * rng.next_f64() - 1.0);
                out.push(Point {
                    n,
                    d,
                    loss: law.loss(n, d) * eps,
                });
            }
        }
        out
    }

    const CHINCHILLA: Law = crate::fit::chinchilla::CHINCHILLA_2022;

    #[test]
    fn fixing_e_at_the_truth_recovers_the_rest() {
        let pts = grid(&CHINCHILLA, 0.0, 1);
        let (law, f) = fit_fixed_e(&pts, 1.69, 1e-3).unwrap();
        assert!(f < 1e-12, "{f}");
        assert!((law.alpha - 0.34).abs() < 1e-3, "{law:?}");
        assert!((law.beta - 0.28).abs() < 1e-3, "{law:?}");
        assert!((law.a / 406.4 - 1.0).abs() < 1e-2, "{law:?}");
    }

    /// Points from a law with a real floor: E = 0 is far worse by AIC than free or fixed E;
    /// points from a pure power law (E = 0): the E-free form wins.
    #[test]
    fn aic_prefers_the_form_the_data_came_from() {
        let pts = grid(&CHINCHILLA, 0.002, 2);
        let c = compare(&pts, &CHINCHILLA, Some(1.69), 1e-3);
        let by = |f: &str| c.iter().find(|x| x.form == f).unwrap().delta_aic;
        assert!(by("zero_e") > 20.0, "{c:?}");
        assert!(by("fixed_e") < 4.0, "{c:?}");

        let pure = Law {
            e: 0.0,
            ..CHINCHILLA
        };
        let pts = grid(&pure, 0.002, 3);
        let off = Law {
            e: 1.0,
            ..CHINCHILLA
        };
        let c = compare(&pts, &off, Some(1.0), 1e-3);
        assert_eq!(by_min(&c), "zero_e", "{c:?}");
    }

    fn by_min(c: &[Candidate]) -> &str {
        &c.iter()
            .min_by(|a, b| a.aic.total_cmp(&b.aic))
            .unwrap()
            .form
    }
}
