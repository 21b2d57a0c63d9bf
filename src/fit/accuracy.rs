//! Laws that predict a task's accuracy from a model's size and training tokens, beside the
//! error-from-loss law ([`super::metric`]):
//!
//! - **Two steps** (Llama 3, 2024; Bhagia et al. 2024): the task loss (the mean negative
//!   log-likelihood of the correct answer) as E + A/N^α + B/D^β — fitted by variable
//!   projection, as [`super::vpnls`] fits the validation loss — then the accuracy as a sigmoid
//!   of that task loss, Acc(ℓ) = b + a / (1 + e^(s·(ℓ − ℓ₀))), s > 0: accuracy falls from
//!   a + b toward b as the task loss grows past its midpoint ℓ₀.
//! - **Direct** (Krajewski et al. 2025): a power law in log-accuracy, −ln Acc = e^c · C^(−α)
//!   at a fixed tokens-per-parameter ratio; across a grid whose ratio varies it carries that
//!   ratio as a factor, −ln Acc = e^c · C^(−α) · (D/N)^δ, so ln(−ln Acc) is linear in
//!   (ln C, ln D/N) and the fit is ordinary least squares (δ = 0 when every run has the same
//!   ratio: the paper's form).
//!
//! The sigmoid is fitted by least squares in accuracy by variable projection: for fixed
//! (s, ℓ₀) it is linear in (a, b) (2×2 normal equations), and (ln s, ℓ₀) are searched on a
//! grid scaled to the task losses' span, then refined by L-BFGS from the eight best points
//! with the profile's gradient (the envelope theorem).

use serde::{Deserialize, Serialize};

use super::chinchilla::{Law, Point};
use super::lbfgs::{Settings, minimize};
use super::linear;

/// Acc(ℓ) = b + a / (1 + e^(s·(ℓ − ℓ₀))).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sigmoid {
    pub a: f64,
    pub b: f64,
    pub s: f64,
    pub midpoint: f64,
}

impl Sigmoid {
    pub fn accuracy(&self, task_loss: f64) -> f64 {
        self.b + self.a * logistic(-self.s * (task_loss - self.midpoint))
    }
}

fn logistic(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The two-step law: task loss from (N, D), accuracy from the task loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TwoStep {
    pub task_loss: Law,
    pub sigmoid: Sigmoid,
}

/// −ln Acc = e^c · C^(−α) · (D/N)^δ, C = 6ND.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Direct {
    pub c: f64,
    pub alpha: f64,
    pub delta: f64,
}

impl Direct {
    pub fn accuracy(&self, n: f64, d: f64) -> f64 {
        let compute = 6.0 * n * d;
        (-(self.c - self.alpha * compute.ln() + self.delta * (d / n).ln()).exp()).exp()
    }
}

/// A fitted accuracy law of either form.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AccuracyLaw {
    TwoStep(TwoStep),
    Direct(Direct),
}

impl AccuracyLaw {
    /// The predicted accuracy of N parameters trained on D tokens.
    pub fn accuracy(&self, n: f64, d: f64) -> f64 {
        match self {
            AccuracyLaw::TwoStep(t) => t.sigmoid.accuracy(t.task_loss.loss(n, d)),
            AccuracyLaw::Direct(l) => l.accuracy(n, d),
        }
    }

    /// The task loss the first step predicts (two-step only).
    pub fn task_loss(&self, n: f64, d: f64) -> Option<f64> {
        match self {
            AccuracyLaw::TwoStep(t) => Some(t.task_loss.loss(n, d)),
            AccuracyLaw::Direct(_) => None,
        }
    }
}

/// One run: its size, tokens, accuracy and (two-step) task loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccuracyPoint {
    pub n: f64,
    pub d: f64,
    pub accuracy: f64,
    pub task_loss: f64,
}

/// The forms this module fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    TwoStep,
    Direct,
}

/// Fit `form` to `points`; `None` where it cannot be fitted (too few runs — 5 for the
/// two-step law's first step, 4 for the direct law — non-finite values, accuracies outside
/// (0, 1) for the direct law, or task losses that do not vary).
pub fn fit(form: Form, points: &[AccuracyPoint]) -> Option<AccuracyLaw> {
    if points
        .iter()
        .any(|p| !(p.n > 0.0 && p.d > 0.0 && p.accuracy.is_finite()))
    {
        return None;
    }
    match form {
        Form::TwoStep => fit_two_step(points).map(AccuracyLaw::TwoStep),
        Form::Direct => fit_direct(points).map(AccuracyLaw::Direct),
    }
}

fn fit_two_step(points: &[AccuracyPoint]) -> Option<TwoStep> {
    if points.iter().any(|p| !p.task_loss.is_finite()) {
        return None;
    }
    let task: Vec<Point> = points
        .iter()
        .map(|p| Point {
            n: p.n,
            d: p.d,
            loss: p.task_loss,
        })
        .collect();
    let task_loss = super::vpnls::fit(&task, None)?.law;
    let pairs: Vec<(f64, f64)> = points.iter().map(|p| (p.task_loss, p.accuracy)).collect();
    let sigmoid = fit_sigmoid(&pairs)?.0;
    Some(TwoStep { task_loss, sigmoid })
}

fn fit_direct(points: &[AccuracyPoint]) -> Option<Direct> {
    if points.len() < 4
        || points
            .iter()
            .any(|p| !(p.accuracy > 0.0 && p.accuracy < 1.0))
    {
        return None;
    }
    let y: Vec<f64> = points.iter().map(|p| (-p.accuracy.ln()).ln()).collect();
    let lc: Vec<f64> = points.iter().map(|p| (6.0 * p.n * p.d).ln()).collect();
    let lr: Vec<f64> = points.iter().map(|p| (p.d / p.n).ln()).collect();
    let (m, n) = (mean(&lr), lr.len() as f64);
    let spread = (lr.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt();
    // One ratio (or nearly): the paper's form, δ = 0.
    if spread < 1e-6 {
        let (c, slope) = linear::line(&lc, &y)?;
        return Some(Direct {
            c,
            alpha: -slope,
            delta: 0.0,
        });
    }
    let [c, slope, delta] = linear::plane(&lc, &lr, &y)?;
    Some(Direct {
        c,
        alpha: -slope,
        delta,
    })
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

const SEARCH: Settings = Settings {
    max_iterations: 2000,
    gradient_tolerance: 1e-14,
    relative_tolerance: 1e-15,
};

/// The least-squares (a, b) at (s, ℓ₀), the SSE, and its gradient in (ln s, ℓ₀); `None`
/// when the logistic does not vary over the points (a and b are then not separable).
fn profile(pairs: &[(f64, f64)], s: f64, midpoint: f64) -> Option<(Sigmoid, f64, [f64; 2])> {
    let m = pairs.len() as f64;
    let u: Vec<f64> = pairs
        .iter()
        .map(|(l, _)| logistic(-s * (l - midpoint)))
        .collect();
    let (su, suu) = (u.iter().sum::<f64>(), u.iter().map(|v| v * v).sum::<f64>());
    let sy: f64 = pairs.iter().map(|p| p.1).sum();
    let suy: f64 = pairs.iter().zip(&u).map(|(p, v)| p.1 * v).sum();
    let det = m * suu - su * su;
    if det.is_nan() || det <= 1e-12 * m * suu.max(1e-300) {
        return None;
    }
    let a = (m * suy - su * sy) / det;
    let b = (sy - a * su) / m;
    let sigmoid = Sigmoid { a, b, s, midpoint };
    let (mut sse, mut g) = (0.0, [0.0; 2]);
    for ((l, y), u) in pairs.iter().zip(&u) {
        let r = b + a * u - y;
        sse += r * r;
        let du = u * (1.0 - u);
        // ∂u/∂ln s = −u(1−u)·s·(ℓ − ℓ₀); ∂u/∂ℓ₀ = u(1−u)·s.
        g[0] += 2.0 * r * a * (-du * s * (l - midpoint));
        g[1] += 2.0 * r * a * du * s;
    }
    sse.is_finite().then_some((sigmoid, sse, g))
}

/// The least-squares sigmoid through (task loss, accuracy) pairs and its SSE; `None` with
/// fewer than 4 pairs or task losses that do not vary.
pub fn fit_sigmoid(pairs: &[(f64, f64)]) -> Option<(Sigmoid, f64)> {
    if pairs.len() < 4 || pairs.iter().any(|(l, y)| !(l.is_finite() && y.is_finite())) {
        return None;
    }
    let (lo, hi) = pairs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.0), hi.max(p.0))
        });
    let span = hi - lo;
    if span.is_nan() || span <= 1e-12 * hi.abs().max(1.0) {
        return None;
    }
    // s·span from 0.05 to 200 (log-spaced), ℓ₀ from 2 spans below the lowest task loss to 2
    // above the highest.
    let (ln_lo, ln_hi) = ((0.05 / span).ln(), (200.0 / span).ln());
    let mut grid: Vec<(f64, [f64; 2])> = Vec::new();
    for i in 0..=40 {
        let ln_s = ln_lo + (ln_hi - ln_lo) * i as f64 / 40.0;
        for j in 0..=40 {
            let midpoint = lo - 2.0 * span + 5.0 * span * j as f64 / 40.0;
            if let Some((_, sse, _)) = profile(pairs, ln_s.exp(), midpoint) {
                grid.push((sse, [ln_s, midpoint]));
            }
        }
    }
    grid.sort_by(|a, b| a.0.total_cmp(&b.0));
    let inside = |x: &[f64; 2]| {
        x[0] > ln_lo - 3.0 && x[0] < ln_hi + 3.0 && (x[1] - lo).abs() < 20.0 * span + 20.0
    };
    let f = |x: &[f64; 2]| match profile(pairs, x[0].exp(), x[1]).filter(|_| inside(x)) {
        Some((_, sse, g)) => (sse, g),
        None => (f64::INFINITY, [0.0; 2]),
    };
    let mut best: Option<(f64, [f64; 2])> = None;
    for &(_, start) in grid.iter().take(8) {
        let m = minimize(&f, start, &SEARCH);
        if m.f.is_finite() && best.is_none_or(|(b, _)| m.f < b) {
            best = Some((m.f, m.x));
        }
    }
    let (_, x) = best?;
    let (sigmoid, sse, _) = profile(pairs, x[0].exp(), x[1])?;
    Some((sigmoid, sse))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    const SIGMOID: Sigmoid = Sigmoid {
        a: 0.8,
        b: 0.1,
        s: 3.0,
        midpoint: 1.5,
    };

    const TASK: Law = Law {
        e: 0.6,
        a: 40.0,
        b: 300.0,
        alpha: 0.35,
        beta: 0.4,
    };

    /// A 4 × 4 grid of (N, D), noise `noise` on the accuracy.
    fn grid(accuracy: impl Fn(f64, f64, f64) -> f64, noise: f64) -> Vec<AccuracyPoint> {
        let mut rng = SplitMix64::new(9);
        let mut out = Vec::new();
        for n in [1e4, 3e4, 1e5, 3e5] {
            for d in [2e5, 6e5, 2e6, 6e6] {
                let task_loss = TASK.loss(n, d);
                out.push(AccuracyPoint {
                    n,
                    d,
                    accuracy: accuracy(n, d, task_loss) + noise * rng.normal(),
                    task_loss,
                });
            }
        }
        out
    }

    #[test]
    fn the_two_step_law_recovers_both_steps() {
        let pts = grid(|_, _, l| SIGMOID.accuracy(l), 0.0);
        let Some(AccuracyLaw::TwoStep(t)) = fit(Form::TwoStep, &pts) else {
            panic!("no fit");
        };
        let got = [t.sigmoid.a, t.sigmoid.b, t.sigmoid.s, t.sigmoid.midpoint];
        for (g, w) in got.iter().zip([0.8, 0.1, 3.0, 1.5]) {
            assert!((g / w - 1.0).abs() < 1e-5, "{:?}", t.sigmoid);
        }
        for (g, w) in [
            (t.task_loss.e, 0.6),
            (t.task_loss.alpha, 0.35),
            (t.task_loss.beta, 0.4),
        ] {
            assert!((g / w - 1.0).abs() < 1e-4, "{:?}", t.task_loss);
        }
        // A size past the grid: both steps carry it.
        let law = AccuracyLaw::TwoStep(t);
        let want = SIGMOID.accuracy(TASK.loss(1e6, 2e7));
        assert!((law.accuracy(1e6, 2e7) - want).abs() < 1e-5);
    }

    /// With noise, no (s, ℓ₀) of a fine scan (each with its exact a, b) fits better.
    #[test]
    fn the_sigmoid_is_the_best_of_a_scan() {
        let pts = grid(|_, _, l| SIGMOID.accuracy(l), 0.01);
        let pairs: Vec<(f64, f64)> = pts.iter().map(|p| (p.task_loss, p.accuracy)).collect();
        let (_, sse) = fit_sigmoid(&pairs).unwrap();
        let mut scan = f64::INFINITY;
        for i in 0..400 {
            for j in 0..400 {
                let (s, m) = (0.5 + i as f64 * 0.02, 0.5 + j as f64 * 0.005);
                if let Some((_, v, _)) = profile(&pairs, s, m) {
                    scan = scan.min(v);
                }
            }
        }
        assert!(sse <= scan * (1.0 + 1e-9), "{sse} vs {scan}");
    }

    #[test]
    fn the_direct_law_recovers_a_power_law_in_log_accuracy() {
        let truth = Direct {
            c: 4.0,
            alpha: 0.3,
            delta: 0.1,
        };
        let pts = grid(|n, d, _| truth.accuracy(n, d), 0.0);
        let Some(AccuracyLaw::Direct(l)) = fit(Form::Direct, &pts) else {
            panic!("no fit");
        };
        for (g, w) in [(l.c, 4.0), (l.alpha, 0.3), (l.delta, 0.1)] {
            assert!((g - w).abs() < 1e-9, "{l:?}");
        }
        // One tokens-per-parameter ratio: the paper's form, δ = 0.
        let paper = Direct {
            c: 3.0,
            alpha: 0.25,
            delta: 0.0,
        };
        let one_ratio: Vec<AccuracyPoint> = [1e4, 3e4, 1e5, 3e5, 1e6]
            .iter()
            .map(|&n| AccuracyPoint {
                n,
                d: 20.0 * n,
                accuracy: paper.accuracy(n, 20.0 * n),
                task_loss: f64::NAN,
            })
            .collect();
        let Some(AccuracyLaw::Direct(l)) = fit(Form::Direct, &one_ratio) else {
            panic!("no fit");
        };
        assert!((l.alpha - 0.25).abs() < 1e-9 && l.delta == 0.0, "{l:?}");
    }

    #[test]
    fn refuses_what_it_cannot_fit() {
        let pts = grid(|_, _, l| SIGMOID.accuracy(l), 0.0);
        assert!(fit(Form::TwoStep, &pts[..4]).is_none());
        let mut at_one = pts.clone();
        at_one[3].accuracy = 1.0;
        assert!(fit(Form::Direct, &at_one).is_none());
        let mut nan = pts.clone();
        nan[0].task_loss = f64::NAN;
        assert!(fit(Form::TwoStep, &nan).is_none());
        let flat: Vec<(f64, f64)> = (0..6).map(|i| (2.0, 0.3 + 0.01 * i as f64)).collect();
        assert!(fit_sigmoid(&flat).is_none());
    }
}
