//! Variable projection for the Chinchilla law (VPNLS; Golub & Pereyra 1973, as Marin's
//! forecasts use it): for fixed exponents (α, β), L̂ = E + A·N^−α + B·D^−β is linear in
//! (E, A, B), so the least-squares objective Σ(L̂ − L)² is minimised over them exactly by
//! non-negative least squares, and only the two exponents are searched. With E pinned, the
//! linear part is (A, B) on L − E.
//!
//! The non-negative problem has at most three unknowns, so it is solved exactly: the
//! unconstrained least-squares solution on every subset of the columns (Householder-free
//! Gram–Schmidt with re-orthogonalisation), the best one whose coefficients are all ≥ 0 —
//! the optimum is the unconstrained solution on its own positive set, so it is among them.
//! The exponents are searched from a grid (α, β ∈ {0.05, 0.10, …, 2.50}) and refined by
//! L-BFGS from the eight best grid points with the profile's gradient (the envelope theorem:
//! ∂/∂α of the profile is the partial derivative at the fixed linear solution).
//!
//! Written here rather than with the `varpro` crate: varpro's linear coefficients are
//! unconstrained, and E, A, B must stay ≥ 0.

use serde::{Deserialize, Serialize};

use super::chinchilla::{Law, Point, allocate};
use super::lbfgs::{Settings, minimize};
use super::reduced::huber;

/// The exponent grid's step and largest value.
const GRID_STEP: f64 = 0.05;
const GRID_MAX: f64 = 2.5;
/// Grid points refined by L-BFGS.
const REFINED: usize = 8;

const SEARCH: Settings = Settings {
    max_iterations: 2000,
    gradient_tolerance: 1e-12,
    relative_tolerance: 1e-15,
};

/// A VPNLS optimum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VpnlsFit {
    pub law: Law,
    /// Σ(L̂ − L)² at the optimum.
    pub sse: f64,
    /// Profile evaluations (grid and refinement).
    pub evaluations: usize,
}

/// Least squares y ≈ Σ c_j·cols[j] by Gram–Schmidt (twice, for orthogonality); `None` when
/// the columns are (numerically) dependent.
fn least_squares(cols: &[&[f64]], y: &[f64]) -> Option<Vec<f64>> {
    let k = cols.len();
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(k);
    let mut r = vec![vec![0.0; k]; k];
    for (j, col) in cols.iter().enumerate() {
        let norm0 = col.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm0 == 0.0 {
            return None;
        }
        let mut v = col.to_vec();
        for _pass in 0..2 {
            for (i, qi) in q.iter().enumerate() {
                let c: f64 = qi.iter().zip(&v).map(|(a, b)| a * b).sum();
                r[i][j] += c;
                v.iter_mut().zip(qi).for_each(|(x, qv)| *x -= c * qv);
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm <= 1e-10 * norm0 {
            return None;
        }
        r[j][j] = norm;
        v.iter_mut().for_each(|x| *x /= norm);
        q.push(v);
    }
    let qty: Vec<f64> = q
        .iter()
        .map(|qi| qi.iter().zip(y).map(|(a, b)| a * b).sum())
        .collect();
    let mut c = vec![0.0; k];
    for j in (0..k).rev() {
        let s: f64 = (j + 1..k).map(|i| r[j][i] * c[i]).sum();
        c[j] = (qty[j] - s) / r[j][j];
    }
    Some(c)
}

/// min Σ(X·c − y)² over c ≥ 0 for at most three columns: the best non-negative
/// unconstrained solution over every subset of the columns (absent columns are 0).
fn nnls(cols: &[&[f64]], y: &[f64]) -> (Vec<f64>, f64) {
    let k = cols.len();
    let sse_of = |c: &[f64]| -> f64 {
        (0..y.len())
            .map(|i| {
                let fit: f64 = (0..k).map(|j| c[j] * cols[j][i]).sum();
                (fit - y[i]).powi(2)
            })
            .sum()
    };
    let mut best = (vec![0.0; k], y.iter().map(|v| v * v).sum::<f64>());
    for mask in 1u32..(1 << k) {
        let chosen: Vec<usize> = (0..k).filter(|j| mask & (1 << j) != 0).collect();
        let sub: Vec<&[f64]> = chosen.iter().map(|&j| cols[j]).collect();
        let Some(c) = least_squares(&sub, y) else {
            continue;
        };
        if c.iter().any(|v| *v < 0.0) {
            continue;
        }
        let mut full = vec![0.0; k];
        for (&j, v) in chosen.iter().zip(c) {
            full[j] = v;
        }
        let sse = sse_of(&full);
        if sse < best.1 {
            best = (full, sse);
        }
    }
    best
}

/// The profile at (α, β): the non-negative linear solution (E, A, B), its SSE, and the
/// SSE's gradient in (α, β).
fn profile(points: &[Point], pinned: Option<f64>, alpha: f64, beta: f64) -> (Law, f64, [f64; 2]) {
    let u: Vec<f64> = points.iter().map(|p| p.n.powf(-alpha)).collect();
    let v: Vec<f64> = points.iter().map(|p| p.d.powf(-beta)).collect();
    let (e, a, b) = match pinned {
        Some(e) => {
            let y: Vec<f64> = points.iter().map(|p| p.loss - e).collect();
            let (c, _) = nnls(&[&u, &v], &y);
            (e, c[0], c[1])
        }
        None => {
            let ones = vec![1.0; points.len()];
            let y: Vec<f64> = points.iter().map(|p| p.loss).collect();
            let (c, _) = nnls(&[&ones, &u, &v], &y);
            (c[0], c[1], c[2])
        }
    };
    let mut sse = 0.0;
    let mut g = [0.0; 2];
    for (i, p) in points.iter().enumerate() {
        let r = e + a * u[i] + b * v[i] - p.loss;
        sse += r * r;
        g[0] -= 2.0 * r * a * u[i] * p.n.ln();
        g[1] -= 2.0 * r * b * v[i] * p.d.ln();
    }
    let law = Law {
        e,
        a,
        b,
        alpha,
        beta,
    };
    (law, sse, g)
}

/// The VPNLS optimum of Σ(L̂ − L)² over E, A, B ≥ 0 (E held at `pinned` when given) and the
/// exponents; `None` with fewer than 5 points (4 with E pinned) or none finite.
pub fn fit(points: &[Point], pinned: Option<f64>) -> Option<VpnlsFit> {
    let needed = if pinned.is_some() { 4 } else { 5 };
    if points.len() < needed
        || points
            .iter()
            .any(|p| !(p.n > 0.0 && p.d > 0.0 && p.loss.is_finite()))
    {
        return None;
    }
    let steps = (GRID_MAX / GRID_STEP).round() as usize;
    let mut grid: Vec<(f64, [f64; 2])> = Vec::with_capacity(steps * steps);
    for i in 1..=steps {
        for j in 1..=steps {
            let (alpha, beta) = (i as f64 * GRID_STEP, j as f64 * GRID_STEP);
            let (_, sse, _) = profile(points, pinned, alpha, beta);
            if sse.is_finite() {
                grid.push((sse, [alpha, beta]));
            }
        }
    }
    let mut evaluations = grid.len();
    grid.sort_by(|a, b| a.0.total_cmp(&b.0));
    let f = |x: &[f64; 2]| {
        if !(x[0] > 0.0 && x[1] > 0.0 && x[0] < 10.0 && x[1] < 10.0) {
            return (f64::INFINITY, [0.0; 2]);
        }
        let (_, sse, g) = profile(points, pinned, x[0], x[1]);
        (sse, g)
    };
    let mut best: Option<(f64, [f64; 2])> = None;
    for &(_, start) in grid.iter().take(REFINED) {
        let m = minimize(&f, start, &SEARCH);
        evaluations += m.iterations + 1;
        if m.f.is_finite() && best.is_none_or(|(b, _)| m.f < b) {
            best = Some((m.f, m.x));
        }
    }
    let (_, [alpha, beta]) = best?;
    let (law, sse, _) = profile(points, pinned, alpha, beta);
    Some(VpnlsFit {
        law,
        sse,
        evaluations,
    })
}

/// The VPNLS optimum of Σ(L̂ − L)² with one exponent shared by N and D (α = β: the
/// over-training law's Chinchilla form), over E, A, B ≥ 0 and that exponent: the grid of
/// [`fit`]'s step along α = β, then L-BFGS in the one exponent from its eight best points.
/// `None` with fewer than 4 points or none finite.
pub fn fit_shared(points: &[Point]) -> Option<VpnlsFit> {
    if points.len() < 4
        || points
            .iter()
            .any(|p| !(p.n > 0.0 && p.d > 0.0 && p.loss.is_finite()))
    {
        return None;
    }
    let steps = (GRID_MAX / GRID_STEP).round() as usize;
    let mut grid: Vec<(f64, f64)> = (1..=steps)
        .map(|i| i as f64 * GRID_STEP)
        .map(|a| (profile(points, None, a, a).1, a))
        .filter(|(sse, _)| sse.is_finite())
        .collect();
    let mut evaluations = grid.len();
    grid.sort_by(|a, b| a.0.total_cmp(&b.0));
    let f = |x: &[f64; 1]| {
        if !(x[0] > 0.0 && x[0] < 10.0) {
            return (f64::INFINITY, [0.0]);
        }
        let (_, sse, g) = profile(points, None, x[0], x[0]);
        (sse, [g[0] + g[1]])
    };
    let mut best: Option<(f64, f64)> = None;
    for &(_, start) in grid.iter().take(REFINED) {
        let m = minimize(&f, [start], &SEARCH);
        evaluations += m.iterations + 1;
        if m.f.is_finite() && best.is_none_or(|(b, _)| m.f < b) {
            best = Some((m.f, m.x[0]));
        }
    }
    let (_, alpha) = best?;
    let (law, sse, _) = profile(points, None, alpha, alpha);
    Some(VpnlsFit {
        law,
        sse,
        evaluations,
    })
}

/// Σ Huber_δ(ln L̂ − ln L) of `law`: the Huber-on-log fit's own objective.
pub fn huber_log(points: &[Point], law: &Law, delta: f64) -> f64 {
    points
        .iter()
        .map(|p| huber(law.loss(p.n, p.d).ln() - p.loss.ln(), delta).0)
        .sum()
}

/// Σ(L̂ − L)² of `law`.
pub fn sse(points: &[Point], law: &Law) -> f64 {
    points
        .iter()
        .map(|p| (law.loss(p.n, p.d) - p.loss).powi(2))
        .sum()
}

/// One law's VPNLS estimate beside its Huber-on-log fit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VpnlsEstimate {
    #[serde(flatten)]
    pub law: Law,
    /// Σ(L̂ − L)² at the VPNLS optimum, and of the Huber-on-log law.
    pub sse: f64,
    pub huber_fit_sse: f64,
    /// Σ Huber_δ(ln L̂ − ln L) of the VPNLS law, and of the Huber-on-log law (its optimum).
    pub huber_log_objective: f64,
    pub huber_fit_objective: f64,
    /// |VPNLS / Huber-on-log − 1| per parameter (E, A, B, α, β; E's is 0 when pinned).
    pub rel_distance: [f64; 5],
    /// Per budget: (compute, N_opt, D_opt) under the VPNLS law, and N_opt's ratio to the
    /// Huber-on-log law's.
    pub allocation: Vec<[f64; 4]>,
    pub evaluations: usize,
}

/// `fits.chinchilla.vpnls`: the free-E law's estimate, and the pinned law's when E is pinned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VpnlsReport {
    pub free: VpnlsEstimate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<VpnlsEstimate>,
}

fn estimate(
    points: &[Point],
    huber_law: &Law,
    delta: f64,
    pinned: Option<f64>,
    budgets: &[f64],
) -> Option<VpnlsEstimate> {
    let v = fit(points, pinned)?;
    let l = v.law;
    let h = huber_law;
    let rel = |a: f64, b: f64| {
        if b == 0.0 {
            a.abs()
        } else {
            (a / b - 1.0).abs()
        }
    };
    Some(VpnlsEstimate {
        law: l,
        sse: v.sse,
        huber_fit_sse: sse(points, h),
        huber_log_objective: huber_log(points, &l, delta),
        huber_fit_objective: huber_log(points, h, delta),
        rel_distance: [
            rel(l.e, h.e),
            rel(l.a, h.a),
            rel(l.b, h.b),
            rel(l.alpha, h.alpha),
            rel(l.beta, h.beta),
        ],
        allocation: budgets
            .iter()
            .map(|&c| {
                let a = allocate(&l, c);
                [c, a.n_opt, a.d_opt, a.n_opt / allocate(h, c).n_opt]
            })
            .collect(),
        evaluations: v.evaluations,
    })
}

/// The VPNLS estimates of the free-E law and of the pinned one (when E is pinned).
pub fn report(
    points: &[Point],
    free: &Law,
    delta: f64,
    pinned: Option<&super::pinned::PinnedReport>,
    budgets: &[f64],
) -> Option<VpnlsReport> {
    Some(VpnlsReport {
        free: estimate(points, free, delta, None, budgets)?,
        pinned: pinned.and_then(|p| estimate(points, &p.law, delta, Some(p.law.e), budgets)),
    })
}

#[cfg(test)]
mod tests;
