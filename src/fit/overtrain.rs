//! The over-training law (Gadre et al. 2024, "Language models scale reliably with
//! over-training and on downstream tasks", eq. 4): with M = D/N the tokens per parameter and
//! C = 6ND, L(C, M) = E + (a·M^η + b·M^−η)·C^−η. Since C^−η·M^η = 6^−η·N^−2η and
//! C^−η·M^−η = 6^−η·D^−2η, it is the Chinchilla form with one exponent shared by N and D:
//! L = E + A/N^α + B/D^α with α = 2η, A = a·6^−η, B = b·6^−η — four parameters, which is
//! what lets a law fitted on small runs at one M carry to runs far past it.
//!
//! Fitted like the Chinchilla law (approach 3): Σ Huber_δ(ln L̂ − ln L) with
//! ln L̂ = ln(e^e + e^(a′ − α ln N) + e^(b′ − α ln D)), L-BFGS from every start of a grid
//! (a′, b′ ∈ {0, 5, …, 25}, e ∈ {−1, −0.5, …, 1}, α ∈ {0, 0.5, …, 2}: 900 starts), the best
//! objective winning, ties to the earliest start. Bootstrap intervals refit each resample
//! from the full fit's optimum (a warm start).

use serde::{Deserialize, Serialize};

use super::bootstrap;
use super::chinchilla::{Law, Point};
use super::lbfgs::{Settings, minimize, multistart};

/// The fitted law in the paper's parameters and in the Chinchilla form's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OvertrainLaw {
    #[serde(rename = "E")]
    pub e: f64,
    pub a: f64,
    pub b: f64,
    pub eta: f64,
}

impl OvertrainLaw {
    /// The same law as L = E + A/N^α + B/D^β with β = α = 2η.
    pub fn chinchilla(&self) -> Law {
        let scale = 6f64.powf(-self.eta);
        Law {
            e: self.e,
            a: self.a * scale,
            b: self.b * scale,
            alpha: 2.0 * self.eta,
            beta: 2.0 * self.eta,
        }
    }

    pub fn loss(&self, n: f64, d: f64) -> f64 {
        self.chinchilla().loss(n, d)
    }

    /// The paper's parameters of a Chinchilla-form law whose two exponents are one (α = β).
    pub fn from_chinchilla(law: &Law) -> OvertrainLaw {
        let eta = law.alpha / 2.0;
        let unscale = 6f64.powf(eta);
        OvertrainLaw {
            e: law.e,
            a: law.a * unscale,
            b: law.b * unscale,
            eta,
        }
    }

    fn from_theta(x: &[f64; 4]) -> OvertrainLaw {
        let eta = x[3] / 2.0;
        let unscale = 6f64.powf(eta);
        OvertrainLaw {
            e: x[2].exp(),
            a: x[0].exp() * unscale,
            b: x[1].exp() * unscale,
            eta,
        }
    }
}

/// The fit and its search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OvertrainFit {
    pub law: OvertrainLaw,
    pub objective: f64,
    pub starts: usize,
    pub starts_at_best: usize,
    theta: [f64; 4],
}

/// Σ Huber_δ(ln L̂ − ln L) and its gradient in θ = (a′, b′, e, α).
fn objective(theta: &[f64; 4], pts: &[(f64, f64, f64)], delta: f64) -> (f64, [f64; 4]) {
    let [a, b, e, alpha] = *theta;
    let ee = e.exp();
    let mut f = 0.0;
    let mut g = [0.0; 4];
    for &(ln_n, ln_d, ln_l) in pts {
        let u = (a - alpha * ln_n).exp();
        let v = (b - alpha * ln_d).exp();
        let s = ee + u + v;
        let (h, dh) = super::reduced::huber(s.ln() - ln_l, delta);
        f += h;
        g[0] += dh * u / s;
        g[1] += dh * v / s;
        g[2] += dh * ee / s;
        g[3] -= dh * (ln_n * u + ln_d * v) / s;
    }
    (f, g)
}

/// Tight enough for objectives of 1e-2 to 1e-6, whose valleys are flat.
const SEARCH: Settings = Settings {
    max_iterations: 5000,
    gradient_tolerance: 1e-10,
    relative_tolerance: 1e-14,
};

fn logs(points: &[Point]) -> Vec<(f64, f64, f64)> {
    points
        .iter()
        .map(|p| (p.n.ln(), p.d.ln(), p.loss.ln()))
        .collect()
}

/// The documented start grid: 900 starts.
pub fn starts() -> Vec<[f64; 4]> {
    let fives = [0.0, 5.0, 10.0, 15.0, 20.0, 25.0];
    let mut out = Vec::new();
    for a in fives {
        for b in fives {
            for e in [-1.0, -0.5, 0.0, 0.5, 1.0] {
                for alpha in [0.0, 0.5, 1.0, 1.5, 2.0] {
                    out.push([a, b, e, alpha]);
                }
            }
        }
    }
    out
}

/// Fit from every start (in parallel); `None` with fewer than 4 points, a non-positive
/// value, or no start reaching a finite objective.
pub fn fit(points: &[Point], delta: f64) -> Option<OvertrainFit> {
    let ok = |v: f64| v.is_finite() && v > 0.0;
    if points.len() < 4 || !points.iter().all(|p| ok(p.n) && ok(p.d) && ok(p.loss)) {
        return None;
    }
    let pts = logs(points);
    let f = |t: &[f64; 4]| objective(t, &pts, delta);
    let grid = starts();
    let (best_f, x, starts_at_best) = multistart(&f, &grid, &SEARCH)?;
    Some(OvertrainFit {
        law: OvertrainLaw::from_theta(&x),
        objective: best_f,
        starts: grid.len(),
        starts_at_best,
        theta: x,
    })
}

/// Percentile intervals of (E, a, b, η) and of the loss at each of `at`, from `resamples`
/// bootstrap refits over the points, each warm-started at `fitted`'s optimum.
pub fn intervals(
    points: &[Point],
    delta: f64,
    fitted: &OvertrainFit,
    at: &[(f64, f64)],
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Option<Vec<[f64; 2]>> {
    let stat = |idx: &[usize]| -> Option<Vec<f64>> {
        let sample: Vec<Point> = idx.iter().map(|&i| points[i]).collect();
        let pts = logs(&sample);
        let f = |t: &[f64; 4]| objective(t, &pts, delta);
        let m = minimize(&f, fitted.theta, &SEARCH);
        if !m.f.is_finite() {
            return None;
        }
        let law = OvertrainLaw::from_theta(&m.x);
        let mut out = vec![law.e, law.a, law.b, law.eta];
        out.extend(at.iter().map(|&(n, d)| law.loss(n, d)));
        Some(out)
    };
    bootstrap::resample_intervals(points.len(), resamples, confidence, seed, &stat)
        .map(|(iv, _)| iv.iter().map(|i| [i.lo, i.hi]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Noise-free points of a known law at several tokens-per-parameter ratios come back.
    #[test]
    fn recovers_a_known_law() {
        let truth = OvertrainLaw {
            e: 1.8,
            a: 150.0,
            b: 900.0,
            eta: 0.16,
        };
        let mut points = Vec::new();
        for n in [1e7, 4e7, 1.6e8, 6.4e8] {
            for m in [5.0, 20.0, 80.0, 320.0] {
                let d = m * n;
                points.push(Point {
                    n,
                    d,
                    loss: truth.loss(n, d),
                });
            }
        }
        let fitted = fit(&points, 1e-3).unwrap();
        let got = fitted.law;
        assert!((got.e / truth.e - 1.0).abs() < 1e-4, "{got:?}");
        assert!((got.eta / truth.eta - 1.0).abs() < 1e-4, "{got:?}");
        assert!((got.a / truth.a - 1.0).abs() < 1e-3, "{got:?}");
        assert!((got.b / truth.b - 1.0).abs() < 1e-3, "{got:?}");
        // The Chinchilla form of the same law predicts the same losses.
        let (n, d) = (3e9, 6e10);
        assert!((got.chinchilla().loss(n, d) / truth.loss(n, d) - 1.0).abs() < 1e-5);
        let ci = intervals(&points, 1e-3, &fitted, &[(n, d)], 50, 0.95, 1).unwrap();
        assert_eq!(ci.len(), 5);
        assert!(
            ci[3][0] <= truth.eta + 1e-6 && truth.eta - 1e-6 <= ci[3][1],
            "{ci:?}"
        );
        assert!(fit(&points[..3], 1e-3).is_none());
    }
}
