//! The best (N, D) under real constraints instead of a FLOP budget alone: a wall-clock budget
//! on this machine (through the fitted cost law time ≈ e^c·N^p·D^q) and an optional cap on
//! parameters (memory). For each N the largest affordable D is known in closed form, so the
//! optimum is a one-dimensional minimisation of L(N, D_max(N)) over ln N, by golden-section
//! search (Kiefer 1953) on a bracket found by a coarse scan.

use super::chinchilla::{Law, allocate};
use super::cost::CostLaw;

/// A constrained optimum.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Constrained {
    pub n: f64,
    pub d: f64,
    pub loss: f64,
    /// Predicted wall seconds (wall-budget case) or FLOPs 6ND (FLOP-budget case).
    pub cost: f64,
    /// Whether the parameter cap is what stopped N from growing.
    pub capped: bool,
}

fn golden(f: &dyn Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let mut x1 = hi - phi * (hi - lo);
    let mut x2 = lo + phi * (hi - lo);
    let (mut f1, mut f2) = (f(x1), f(x2));
    for _ in 0..200 {
        if f1 <= f2 {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - phi * (hi - lo);
            f1 = f(x1);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + phi * (hi - lo);
            f2 = f(x2);
        }
        if hi - lo < 1e-10 {
            break;
        }
    }
    (lo + hi) / 2.0
}

/// Minimise `loss(ln N)` for ln N in [lo, hi].
fn minimise_ln_n(loss: &dyn Fn(f64) -> f64, lo: f64, hi: f64) -> f64 {
    if hi <= lo {
        return hi;
    }
    // Coarse scan, then golden section around the best cell.
    let cells = 200;
    let step = (hi - lo) / cells as f64;
    let best = (0..=cells)
        .map(|i| lo + step * i as f64)
        .min_by(|a, b| loss(*a).total_cmp(&loss(*b)))
        .unwrap_or(lo);
    golden(loss, (best - step).max(lo), (best + step).min(hi))
}

/// Best (N, D) for a wall-clock budget `seconds` under `cost`, with N ≤ `max_params`.
/// `None` when the budget cannot buy a single token for the smallest model (N = 1e3).
pub fn for_wall_time(
    law: &Law,
    cost: &CostLaw,
    seconds: f64,
    max_params: Option<f64>,
) -> Option<Constrained> {
    if cost.q <= 0.0 || seconds <= 0.0 {
        return None;
    }
    // time = e^c N^p D^q  ⇒  ln D_max = (ln T − c − p ln N) / q
    let ln_d = |ln_n: f64| (seconds.ln() - cost.c - cost.p * ln_n) / cost.q;
    let lo = 1e3f64.ln();
    // Largest N that still affords one token: ln D_max(ln N) = 0.
    let hi_time = if cost.p > 0.0 {
        (seconds.ln() - cost.c) / cost.p
    } else {
        lo + 30.0
    };
    let hi = max_params.map_or(hi_time, |cap| cap.ln().min(hi_time));
    if hi <= lo {
        return None;
    }
    let loss = |ln_n: f64| law.loss(ln_n.exp(), ln_d(ln_n).exp());
    let ln_n = minimise_ln_n(&loss, lo, hi);
    let (n, d) = (ln_n.exp(), ln_d(ln_n).exp());
    Some(Constrained {
        n,
        d,
        loss: law.loss(n, d),
        cost: cost.predict(n, d),
        capped: max_params.is_some_and(|cap| (n / cap - 1.0).abs() < 1e-6),
    })
}

/// Best (N, D) for a FLOP budget C = 6ND with N ≤ `max_params`: the unconstrained optimum
/// if it fits under the cap, else N at the cap (loss is convex in ln N along C = 6ND).
pub fn for_flops(law: &Law, compute: f64, max_params: Option<f64>) -> Constrained {
    let free = allocate(law, compute);
    let (n, capped) = match max_params {
        Some(cap) if free.n_opt > cap => (cap, true),
        _ => (free.n_opt, false),
    };
    let d = compute / (6.0 * n);
    Constrained {
        n,
        d,
        loss: law.loss(n, d),
        cost: compute,
        capped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAW: Law = crate::fit::chinchilla::CHINCHILLA_2022;

    #[test]
    fn wall_time_proportional_to_flops_matches_the_flop_optimum() {
        // time = 6ND / 1e12 s: a wall budget T is the FLOP budget 1e12·T.
        let cost = CostLaw {
            c: (6.0f64 / 1e12).ln(),
            p: 1.0,
            q: 1.0,
            r: 0.0,
            threads: 1.0,
            rmse_log: 0.0,
            points: 0,
        };
        let t = 5.76e23 / 1e12;
        let c = for_wall_time(&LAW, &cost, t, None).unwrap();
        let free = allocate(&LAW, 5.76e23);
        assert!(
            (c.n / free.n_opt - 1.0).abs() < 1e-4,
            "{} vs {}",
            c.n,
            free.n_opt
        );
        assert!((c.cost / t - 1.0).abs() < 1e-9);
        assert!(!c.capped);
    }

    #[test]
    fn a_parameter_cap_binds_and_spends_the_rest_on_tokens() {
        let free = allocate(&LAW, 1e22);
        let capped = for_flops(&LAW, 1e22, Some(free.n_opt / 4.0));
        assert!(capped.capped);
        assert!((capped.d / free.d_opt - 4.0).abs() < 1e-9);
        assert!(capped.loss > free.loss);
        let loose = for_flops(&LAW, 1e22, Some(free.n_opt * 4.0));
        assert!(!loose.capped && (loose.n / free.n_opt - 1.0).abs() < 1e-12);
    }
}
