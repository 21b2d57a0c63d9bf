//! Fitting a curve law by variable projection: for fixed exponents the law is linear in its
//! floor, amplitudes and the training-loss offset, which a small non-negative weighted least
//! squares solves exactly; Nelder–Mead (Nelder & Mead 1965) searches only the exponents.
//! The objective is Huber's (δ = [`DELTA`]) on relative residuals (L̂ − L)/L (≈ log
//! residuals, as the endpoint law's), solved for the linear part by iteratively reweighted
//! least squares; each validation point and each bin of training losses counts once.

/// Huber's δ on relative residuals (the endpoint law's default on log residuals).
pub const DELTA: f64 = 1e-3;

/// Reweighting rounds of the linear part's Huber fit.
const IRLS_ROUNDS: usize = 4;

use super::features::Schedule;
use super::{CurveForm, CurveParams};

/// One observed loss of a run, after the burn-in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Obs {
    /// Updates done when it was measured.
    pub step: u64,
    pub loss: f64,
    /// A mean of logged training losses (not a validation point).
    pub train: bool,
}

/// A run as the solver sees it: its observations and its schedule read at their steps.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub obs: Vec<Obs>,
    pub schedule: Schedule,
}

/// The nonlinear part of a law: (α, β, γ, C) for multi-power, (α) for annealing.
pub type Exponents = [f64; 4];

/// The columns of the linear part at fixed exponents: [1, S₁^−α, −drop, train offset].
fn columns(form: CurveForm, e: &Exponents, run: &Prepared, out: &mut Vec<[f64; 4]>) {
    let s = &run.schedule;
    let pow = match form {
        CurveForm::MultiPower => s.eta_pow(e[2]),
        CurveForm::Annealing => Vec::new(),
    };
    for (i, o) in run.obs.iter().enumerate() {
        let drop = match form {
            CurveForm::MultiPower => s.drop_sum(i, e[3], e[1], &pow),
            CurveForm::Annealing => s.annealing[i],
        };
        let train = if o.train { 1.0 } else { 0.0 };
        out.push([1.0, s.area[i].powf(-e[0]), -drop, train]);
    }
}

/// Exponents inside their bounds (α ∈ (0, 3], β ∈ (0, 5], γ ∈ [0, 2], C ∈ [1e-6, 1e6]).
pub fn admissible(form: CurveForm, e: &Exponents) -> bool {
    let alpha = e[0] > 1e-4 && e[0] <= 3.0;
    match form {
        CurveForm::Annealing => alpha,
        CurveForm::MultiPower => {
            alpha
                && e[1] > 1e-4
                && e[1] <= 5.0
                && (0.0..=2.0).contains(&e[2])
                && (1e-6..=1e6).contains(&e[3])
        }
    }
}

/// The best non-negative linear part at fixed exponents: (objective, [L₀, A, B, offset]).
pub fn project(form: CurveForm, e: &Exponents, runs: &[&Prepared]) -> Option<(f64, [f64; 4])> {
    if !admissible(form, e) {
        return None;
    }
    let mut x = Vec::new();
    let mut y = Vec::new();
    for r in runs {
        columns(form, e, r, &mut x);
        y.extend(r.obs.iter().map(|o| o.loss));
    }
    let has_train = x.iter().any(|c| c[3] != 0.0);
    let has_val = x.iter().any(|c| c[3] == 0.0);
    // Free columns: L₀ always; A, B ≥ 0; the offset only where both kinds are observed.
    let mut best: Option<(f64, [f64; 4])> = None;
    for mask in 0..4u8 {
        let mut free = vec![0usize];
        if mask & 1 == 0 {
            free.push(1);
        }
        if mask & 2 == 0 {
            free.push(2);
        }
        if has_train && has_val {
            free.push(3);
        }
        // Huber by iteratively reweighted least squares: a point past δ weighs δ/|r|.
        let mut rw = vec![1.0; y.len()];
        let mut found = None;
        for _ in 0..IRLS_ROUNDS {
            let Some(coef) = weighted_solve(&x, &y, &free, &rw) else {
                break;
            };
            found = Some(coef);
            for ((c, &l), w) in x.iter().zip(&y).zip(rw.iter_mut()) {
                let fit: f64 = c.iter().zip(&coef).map(|(a, b)| a * b).sum();
                let r = ((fit - l) / l).abs();
                *w = if r <= DELTA { 1.0 } else { DELTA / r };
            }
        }
        let Some(coef) = found else {
            continue;
        };
        if coef[1] < 0.0 || coef[2] < 0.0 {
            continue;
        }
        let obj = huber(&x, &y, &coef, DELTA);
        if obj.is_finite() && best.is_none_or(|(b, _)| obj < b) {
            best = Some((obj, coef));
        }
    }
    best
}

fn huber(x: &[[f64; 4]], y: &[f64], coef: &[f64; 4], delta: f64) -> f64 {
    x.iter()
        .zip(y)
        .map(|(c, &l)| {
            let fit: f64 = c.iter().zip(coef).map(|(a, b)| a * b).sum();
            let r = ((fit - l) / l).abs();
            if r <= delta {
                r * r
            } else {
                delta * (2.0 * r - delta)
            }
        })
        .sum()
}

/// Weighted (`rw`/L²) least squares over the `free` columns (the rest fixed at 0).
fn weighted_solve(x: &[[f64; 4]], y: &[f64], free: &[usize], rw: &[f64]) -> Option<[f64; 4]> {
    let k = free.len();
    let mut ata = [[0.0f64; 4]; 4];
    let mut aty = [0.0f64; 4];
    for ((c, &l), r) in x.iter().zip(y).zip(rw) {
        let w = r / (l * l);
        for (i, &fi) in free.iter().enumerate() {
            aty[i] += w * c[fi] * l;
            for (j, &fj) in free.iter().enumerate() {
                ata[i][j] += w * c[fi] * c[fj];
            }
        }
    }
    let sol = solve_spd(&ata, &aty, k)?;
    let mut out = [0.0; 4];
    for (i, &fi) in free.iter().enumerate() {
        out[fi] = sol[i];
    }
    Some(out)
}

/// Gaussian elimination with partial pivoting on the leading k×k block.
fn solve_spd(a: &[[f64; 4]; 4], b: &[f64; 4], k: usize) -> Option<[f64; 4]> {
    let mut m = *a;
    let mut v = *b;
    let scale = (0..k).map(|i| m[i][i].abs()).fold(0.0, f64::max);
    for col in 0..k {
        let piv = (col..k).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))?;
        if m[piv][col].abs() <= 1e-13 * scale.max(f64::MIN_POSITIVE) {
            return None;
        }
        m.swap(col, piv);
        v.swap(col, piv);
        let pivot_row = m[col];
        for row in col + 1..k {
            let f = m[row][col] / pivot_row[col];
            for (x, p) in m[row][col..k].iter_mut().zip(&pivot_row[col..k]) {
                *x -= f * p;
            }
            v[row] -= f * v[col];
        }
    }
    let mut out = [0.0; 4];
    for row in (0..k).rev() {
        let s: f64 = (row + 1..k).map(|c| m[row][c] * out[c]).sum();
        out[row] = (v[row] - s) / m[row][row];
    }
    out.iter().all(|v| v.is_finite()).then_some(out)
}

/// The search's coordinates: α, ln β, γ, ln C (only α for annealing).
fn to_exponents(form: CurveForm, z: &[f64]) -> Exponents {
    match form {
        CurveForm::Annealing => [z[0], 0.0, 0.0, 0.0],
        CurveForm::MultiPower => [z[0], z[1].exp(), z[2], z[3].exp()],
    }
}

fn to_coordinates(form: CurveForm, e: &Exponents) -> Vec<f64> {
    match form {
        CurveForm::Annealing => vec![e[0]],
        CurveForm::MultiPower => vec![e[0], e[1].ln(), e[2], e[3].ln()],
    }
}

/// The starts of a fit from scratch.
pub fn starts(form: CurveForm) -> Vec<Exponents> {
    match form {
        CurveForm::Annealing => vec![[0.2, 0., 0., 0.], [0.5, 0., 0., 0.], [1.0, 0., 0., 0.]],
        CurveForm::MultiPower => {
            let mut out = Vec::new();
            for alpha in [0.4, 0.8] {
                for c in [0.3, 3.0] {
                    out.push([alpha, 0.6, 0.5, c]);
                }
            }
            out
        }
    }
}

/// The fitted law from the best of `starts` (each refined by Nelder–Mead, at most `evals`
/// objective evaluations each).
pub fn fit(
    form: CurveForm,
    runs: &[&Prepared],
    starts: &[Exponents],
    evals: usize,
) -> Option<CurveParams> {
    let f = |z: &[f64]| {
        project(form, &to_exponents(form, z), runs).map_or(f64::INFINITY, |(obj, _)| obj)
    };
    let mut best: Option<(f64, Vec<f64>)> = None;
    for s in starts {
        let (z, v) = nelder_mead(&f, &to_coordinates(form, s), evals);
        if v.is_finite() && best.as_ref().is_none_or(|(b, _)| v < *b) {
            best = Some((v, z));
        }
    }
    let (_, z) = best?;
    let e = to_exponents(form, &z);
    let (_, lin) = project(form, &e, runs)?;
    let mut x = Vec::new();
    for r in runs {
        columns(form, &e, r, &mut x);
    }
    let squares: f64 = x
        .iter()
        .zip(runs.iter().flat_map(|r| r.obs.iter()))
        .map(|(c, o)| {
            let fit: f64 = c.iter().zip(&lin).map(|(a, b)| a * b).sum();
            ((fit - o.loss) / o.loss).powi(2)
        })
        .sum();
    let points: usize = runs.iter().map(|r| r.obs.len()).sum();
    Some(CurveParams {
        l0: lin[0],
        a: lin[1],
        alpha: e[0],
        b: lin[2],
        beta: (form == CurveForm::MultiPower).then_some(e[1]),
        gamma: (form == CurveForm::MultiPower).then_some(e[2]),
        c: (form == CurveForm::MultiPower).then_some(e[3]),
        train_offset: lin[3],
        rms_rel: (squares / points.max(1) as f64).sqrt(),
        points,
    })
}

/// Nelder–Mead with the standard coefficients; returns the best vertex and its value.
fn nelder_mead(f: &dyn Fn(&[f64]) -> f64, x0: &[f64], evals: usize) -> (Vec<f64>, f64) {
    let n = x0.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
    simplex.push((x0.to_vec(), f(x0)));
    for i in 0..n {
        let mut x = x0.to_vec();
        x[i] += if x[i].abs() > 0.05 {
            0.2 * x[i].abs()
        } else {
            0.1
        };
        let v = f(&x);
        simplex.push((x, v));
    }
    let mut used = n + 1;
    while used < evals {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (lo, hi) = (simplex[0].1, simplex[n].1);
        if hi.is_finite() && (hi - lo).abs() <= 1e-10 * lo.abs().max(1e-12) {
            break;
        }
        let centroid: Vec<f64> = (0..n)
            .map(|j| simplex[..n].iter().map(|(x, _)| x[j]).sum::<f64>() / n as f64)
            .collect();
        let along = |t: f64| -> Vec<f64> {
            (0..n)
                .map(|j| centroid[j] + t * (simplex[n].0[j] - centroid[j]))
                .collect()
        };
        let xr = along(-1.0);
        let vr = f(&xr);
        used += 1;
        if vr < simplex[0].1 {
            let xe = along(-2.0);
            let ve = f(&xe);
            used += 1;
            simplex[n] = if ve < vr { (xe, ve) } else { (xr, vr) };
        } else if vr < simplex[n - 1].1 {
            simplex[n] = (xr, vr);
        } else {
            let (xc, vc) = if vr < simplex[n].1 {
                let x = along(-0.5);
                let v = f(&x);
                (x, v)
            } else {
                let x = along(0.5);
                let v = f(&x);
                (x, v)
            };
            used += 1;
            if vc < simplex[n].1.min(vr) {
                simplex[n] = (xc, vc);
            } else {
                let best = simplex[0].0.clone();
                for s in simplex.iter_mut().skip(1) {
                    for (x, b) in s.0.iter_mut().zip(&best) {
                        *x = b + 0.5 * (*x - b);
                    }
                    s.1 = f(&s.0);
                }
                used += n;
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (x, v) = simplex.swap_remove(0);
    (x, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nelder_mead_finds_a_quadratic_minimum() {
        let f = |z: &[f64]| (z[0] - 1.0).powi(2) + 3.0 * (z[1] + 2.0).powi(2) + 1.0;
        let (x, v) = nelder_mead(&f, &[0.0, 0.0], 2000);
        assert!(
            (x[0] - 1.0).abs() < 1e-4 && (x[1] + 2.0).abs() < 1e-4,
            "{x:?}"
        );
        assert!((v - 1.0).abs() < 1e-8);
    }
}
