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

/// Limits on the final run beyond its FLOP budget (`final:`): a lifetime of inference tokens
/// served at 2N FLOPs each (Sardana et al. 2024), a parameter cap, a memory limit through the
/// fitted memory law (peak bytes ≈ e^c·N^p·D^q) and a training wall-time limit through the
/// fitted time law (seconds ≈ e^c·N^p·D^q, on the machine that trained the runs).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    pub inference_tokens: f64,
    pub max_params: Option<f64>,
    /// The memory law and its limit in bytes.
    pub memory: Option<(CostLaw, f64)>,
    /// The time law and its limit in seconds of training.
    pub wall: Option<(CostLaw, f64)>,
}

impl Limits {
    /// Whether (N, D) stays within the cost laws' limits (memory, wall time).
    fn within_cost(&self, n: f64, d: f64) -> bool {
        [self.memory, self.wall]
            .iter()
            .flatten()
            .all(|(law, limit)| law.predict(n, d) <= *limit)
    }
}

/// The optimum of a total budget under [`Limits`], beside the training-only optimum.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LimitedOptimum {
    pub n: f64,
    pub d: f64,
    pub loss: f64,
    /// 6ND, and 2N·I of the lifetime's inference: together the budget.
    pub training_flops: f64,
    pub inference_flops: f64,
    /// Which limits hold the optimum at their edge: `max_params`, `max_memory`,
    /// `max_wall_seconds`.
    pub binding: Vec<String>,
    /// Predicted peak memory (bytes) at the optimum, with a memory law.
    pub memory_bytes: Option<f64>,
    /// Predicted training wall seconds at the optimum, with a wall-time limit.
    #[serde(default)]
    pub wall_seconds: Option<f64>,
    /// The optimum of the same budget spent on training alone (C = 6ND, no limits).
    pub free_n: f64,
    pub free_d: f64,
    pub free_loss: f64,
}

/// Best (N, D) for a total budget C = 6ND + 2N·I under `limits`: for each N the tokens are
/// D(N) = (C − 2N·I)/(6N), so the optimum is a one-dimensional minimisation of L(N, D(N))
/// over the ln N that satisfy every limit (infeasible ln N score +∞). `None` when no N from
/// 10³ up leaves a training token within the limits.
pub fn for_total_flops(law: &Law, compute: f64, limits: &Limits) -> Option<LimitedOptimum> {
    let i = limits.inference_tokens.max(0.0);
    let d_of = |n: f64| (compute - 2.0 * n * i) / (6.0 * n);
    let feasible = |n: f64| {
        let d = d_of(n);
        d >= 1.0
            && limits.max_params.is_none_or(|cap| n <= cap * (1.0 + 1e-12))
            && limits.within_cost(n, d)
    };
    let loss = |ln_n: f64| {
        let n = ln_n.exp();
        if feasible(n) {
            law.loss(n, d_of(n))
        } else {
            f64::INFINITY
        }
    };
    let lo = 1e3f64.ln();
    // N must leave one training token: 6N + 2N·I ≤ C.
    let hi = (compute / (6.0 + 2.0 * i)).ln();
    if hi <= lo {
        return None;
    }
    let mut ln_n = minimise_ln_n(&loss, lo, hi);
    if !feasible(ln_n.exp()) {
        // The optimum sits at a limit's edge and the search ended a rounding step past it:
        // bisect back to the edge from the best feasible point of a scan.
        let cells = 200;
        let inside = (0..=cells)
            .map(|k| lo + (hi - lo) * k as f64 / cells as f64)
            .filter(|x| feasible(x.exp()))
            .min_by(|a, b| loss(*a).total_cmp(&loss(*b)))?;
        let (mut good, mut bad) = (inside, ln_n);
        for _ in 0..200 {
            let mid = (good + bad) / 2.0;
            if feasible(mid.exp()) {
                good = mid;
            } else {
                bad = mid;
            }
        }
        ln_n = good;
    }
    let n = ln_n.exp();
    let d = d_of(n);
    let free = allocate(law, compute);
    let mut binding = Vec::new();
    if limits
        .max_params
        .is_some_and(|cap| (n / cap - 1.0).abs() < 1e-6)
    {
        binding.push("max_params".to_string());
    }
    for (name, law) in [
        ("max_memory", limits.memory),
        ("max_wall_seconds", limits.wall),
    ] {
        if let Some((m, limit)) = law
            && (m.predict(n, d) / limit - 1.0).abs() < 1e-6
        {
            binding.push(name.to_string());
        }
    }
    Some(LimitedOptimum {
        n,
        d,
        loss: law.loss(n, d),
        training_flops: 6.0 * n * d,
        inference_flops: 2.0 * n * i,
        binding,
        memory_bytes: limits.memory.map(|(m, _)| m.predict(n, d)),
        wall_seconds: limits.wall.map(|(w, _)| w.predict(n, d)),
        free_n: free.n_opt,
        free_d: free.d_opt,
        free_loss: free.loss,
    })
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

    /// Without limits the total-budget optimum is the FLOP optimum; inference tokens move it
    /// to a smaller N trained on more tokens (Sardana et al. 2024), at a higher loss.
    #[test]
    fn inference_moves_the_optimum_to_smaller_models_on_more_tokens() {
        let c = 1e22;
        let free = allocate(&LAW, c);
        let none = for_total_flops(&LAW, c, &Limits::default()).unwrap();
        assert!((none.n / free.n_opt - 1.0).abs() < 1e-4, "{none:?}");
        assert!(none.binding.is_empty() && none.inference_flops == 0.0);
        let limits = Limits {
            inference_tokens: 2e12,
            ..Limits::default()
        };
        let inf = for_total_flops(&LAW, c, &limits).unwrap();
        assert!(inf.n < 0.8 * free.n_opt, "{inf:?}");
        assert!(inf.d / inf.n > free.d_opt / free.n_opt);
        assert!(((inf.training_flops + inf.inference_flops) / c - 1.0).abs() < 1e-9);
        // The loss is the best along the budget: a 5 % larger or smaller N does worse.
        for k in [0.95, 1.05] {
            let n = inf.n * k;
            let d = (c - 2.0 * n * 2e12) / (6.0 * n);
            assert!(LAW.loss(n, d) > inf.loss);
        }
    }

    /// A parameter cap and a memory limit each bind where they should.
    #[test]
    fn caps_on_parameters_and_memory_bind() {
        let c = 1e22;
        let free = allocate(&LAW, c);
        let cap = Limits {
            max_params: Some(free.n_opt / 3.0),
            ..Limits::default()
        };
        let o = for_total_flops(&LAW, c, &cap).unwrap();
        assert_eq!(o.binding, vec!["max_params".to_string()]);
        assert!((o.n / (free.n_opt / 3.0) - 1.0).abs() < 1e-6);
        // Memory ∝ N (bytes = 16·N): a limit of 16·N_opt/2 halves N.
        let law = CostLaw {
            c: 16f64.ln(),
            p: 1.0,
            q: 0.0,
            r: 0.0,
            threads: 1.0,
            rmse_log: 0.0,
            points: 0,
        };
        let mem = Limits {
            memory: Some((law, 16.0 * free.n_opt / 2.0)),
            ..Limits::default()
        };
        let o = for_total_flops(&LAW, c, &mem).unwrap();
        assert_eq!(o.binding, vec!["max_memory".to_string()]);
        assert!((o.n / (free.n_opt / 2.0) - 1.0).abs() < 1e-6, "{o:?}");
        assert!((o.memory_bytes.unwrap() / (8.0 * free.n_opt) - 1.0).abs() < 1e-6);
        // A budget that all goes to inference leaves nothing to train.
        let all = Limits {
            inference_tokens: c,
            ..Limits::default()
        };
        assert!(for_total_flops(&LAW, c, &all).is_none());
    }

    /// A wall-time limit binds through the time law: with seconds ∝ N^1.2·D, time along a
    /// fixed budget grows as N^0.2, so a limit at the time of N_opt/2 holds N there.
    #[test]
    fn a_wall_time_limit_binds_through_the_time_law() {
        let c = 1e22;
        let free = allocate(&LAW, c);
        let time = CostLaw {
            c: (1e-12f64).ln(),
            p: 1.2,
            q: 1.0,
            r: 0.0,
            threads: 1.0,
            rmse_log: 0.0,
            points: 0,
        };
        let half = free.n_opt / 2.0;
        let limit = time.predict(half, c / (6.0 * half));
        let wall = Limits {
            wall: Some((time, limit)),
            ..Limits::default()
        };
        let o = for_total_flops(&LAW, c, &wall).unwrap();
        assert_eq!(o.binding, vec!["max_wall_seconds".to_string()]);
        assert!((o.n / half - 1.0).abs() < 1e-6, "{o:?}");
        assert!((o.wall_seconds.unwrap() / limit - 1.0).abs() < 1e-6);
        assert!(o.memory_bytes.is_none());
        // A limit the budget's optimum already meets leaves it where it was.
        let loose = Limits {
            wall: Some((time, 10.0 * limit)),
            ..Limits::default()
        };
        let o = for_total_flops(&LAW, c, &loose).unwrap();
        assert!(o.binding.is_empty() && (o.n / free.n_opt - 1.0).abs() < 1e-4);
        // Shorter than the smallest model's run on the budget: no model.
        let tight = Limits {
            wall: Some((time, time.predict(1e3, c / 6e3) / 2.0)),
            ..Limits::default()
        };
        assert!(for_total_flops(&LAW, c, &tight).is_none());
    }
}
