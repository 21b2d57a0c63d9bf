//! Chinchilla approach 2 (Hoffmann et al. 2022, §3.2): for each compute budget, a parabola
//! of loss in ln N; its vertex is that budget's N_opt, and D_opt is read off the budget's own
//! runs (ln D interpolated linearly in ln N — measured tokens, not 6ND). Then
//! N_opt ∝ Cᵃ and D_opt ∝ Cᵇ by least squares in log space.
//!
//! A budget whose parabola opens downward, whose vertex lies outside its sampled sizes, or
//! that has fewer than 3 sizes is refused with a typed reason, never silently used.

use std::fmt;

use super::linear::{line, parabola};

/// One run of an IsoFLOP sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IsoPoint {
    pub budget: f64,
    pub n: f64,
    pub d: f64,
    pub loss: f64,
}

/// A budget's optimum.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BudgetOptimum {
    pub budget: f64,
    pub n_opt: f64,
    pub d_opt: f64,
    pub loss_opt: f64,
    pub sizes: usize,
    /// The fitted parabola: loss = c0 + c1·ln N + c2·(ln N)².
    pub parabola: [f64; 3],
    /// The sampled range of N.
    pub n_range: [f64; 2],
}

/// Why a budget was left out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refusal {
    TooFewSizes {
        budget: f64,
        sizes: usize,
    },
    OpensDownward {
        budget: f64,
        curvature: f64,
    },
    VertexOutside {
        budget: f64,
        n_opt: f64,
        n_min: f64,
        n_max: f64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refusal::TooFewSizes { budget, sizes } => write!(
                f,
                "IsoFLOP budget {budget:e}: only {sizes} size(s); a parabola needs at least 3 — add sizes to this budget"
            ),
            Refusal::OpensDownward { budget, curvature } => write!(
                f,
                "IsoFLOP budget {budget:e}: loss is not convex in ln N (quadratic term {curvature:.3e} ≤ 0); the sizes may not bracket the optimum"
            ),
            Refusal::VertexOutside {
                budget,
                n_opt,
                n_min,
                n_max,
            } => write!(
                f,
                "IsoFLOP budget {budget:e}: the optimum N {n_opt:.3e} lies outside the sampled sizes [{n_min:.3e}, {n_max:.3e}]; extend the sizes past it"
            ),
        }
    }
}

/// The approach-2 result.
#[derive(Debug, Clone, PartialEq)]
pub struct IsoFlopFit {
    /// N_opt ∝ Cᵃ
    pub a: f64,
    /// D_opt ∝ Cᵇ
    pub b: f64,
    /// ln N_opt = a_intercept + a·ln C
    pub a_intercept: f64,
    pub b_intercept: f64,
    pub optima: Vec<BudgetOptimum>,
    pub refusals: Vec<Refusal>,
}

/// Fit every budget, then the exponents; `Err` lists why fewer than 2 budgets were usable.
pub fn fit(points: &[IsoPoint]) -> Result<IsoFlopFit, Vec<Refusal>> {
    let mut budgets: Vec<f64> = points.iter().map(|p| p.budget).collect();
    budgets.sort_by(f64::total_cmp);
    budgets.dedup();
    let mut optima = Vec::new();
    let mut refusals = Vec::new();
    for budget in budgets {
        let group: Vec<&IsoPoint> = points.iter().filter(|p| p.budget == budget).collect();
        match optimum(budget, &group) {
            Ok(o) => optima.push(o),
            Err(r) => refusals.push(r),
        }
    }
    let ln_c: Vec<f64> = optima.iter().map(|o| o.budget.ln()).collect();
    let ln_n: Vec<f64> = optima.iter().map(|o| o.n_opt.ln()).collect();
    let ln_d: Vec<f64> = optima.iter().map(|o| o.d_opt.ln()).collect();
    match (line(&ln_c, &ln_n), line(&ln_c, &ln_d)) {
        (Some((a_intercept, a)), Some((b_intercept, b))) => Ok(IsoFlopFit {
            a,
            b,
            a_intercept,
            b_intercept,
            optima,
            refusals,
        }),
        _ => Err(refusals),
    }
}

fn optimum(budget: f64, group: &[&IsoPoint]) -> Result<BudgetOptimum, Refusal> {
    let x: Vec<f64> = group.iter().map(|p| p.n.ln()).collect();
    let mut distinct = x.clone();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if distinct.len() < 3 {
        return Err(Refusal::TooFewSizes {
            budget,
            sizes: distinct.len(),
        });
    }
    let y: Vec<f64> = group.iter().map(|p| p.loss).collect();
    let [c0, c1, c2] = parabola(&x, &y).ok_or(Refusal::TooFewSizes {
        budget,
        sizes: distinct.len(),
    })?;
    if c2 <= 0.0 {
        return Err(Refusal::OpensDownward {
            budget,
            curvature: c2,
        });
    }
    let vertex = -c1 / (2.0 * c2);
    let (lo, hi) = (distinct[0], distinct[distinct.len() - 1]);
    if vertex < lo || vertex > hi {
        return Err(Refusal::VertexOutside {
            budget,
            n_opt: vertex.exp(),
            n_min: lo.exp(),
            n_max: hi.exp(),
        });
    }
    let ln_d: Vec<f64> = group.iter().map(|p| p.d.ln()).collect();
    let (d0, d1) = line(&x, &ln_d).ok_or(Refusal::TooFewSizes {
        budget,
        sizes: distinct.len(),
    })?;
    Ok(BudgetOptimum {
        budget,
        n_opt: vertex.exp(),
        d_opt: (d0 + d1 * vertex).exp(),
        loss_opt: c0 + c1 * vertex + c2 * vertex * vertex,
        sizes: distinct.len(),
        parabola: [c0, c1, c2],
        n_range: [lo.exp(), hi.exp()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::chinchilla::{Law, allocate};

    #[test]
    fn recovers_chinchillas_exponent_from_noise_free_points() {
        // Rounded Chinchilla law; 9 budgets; 9 sizes per budget on a ln N grid centred on the
        // true optimum; D = C / 6N.
        let law = Law {
            e: 1.69,
            a: 406.4,
            b: 410.7,
            alpha: 0.34,
            beta: 0.28,
        };
        let mut points = Vec::new();
        for i in 0..9 {
            let budget = 1e18 * 10f64.powf(i as f64 * 0.5);
            let centre = allocate(&law, budget).n_opt.ln();
            for j in -4..=4 {
                let n = (centre + 0.25 * j as f64).exp();
                let d = budget / (6.0 * n);
                points.push(IsoPoint {
                    budget,
                    n,
                    d,
                    loss: law.loss(n, d),
                });
            }
        }
        let fit = fit(&points).unwrap();
        assert!(fit.refusals.is_empty());
        assert!((fit.a - 0.4516).abs() < 1e-4, "a = {}", fit.a);
        assert!((fit.a + fit.b - 1.0).abs() < 1e-9, "b = {}", fit.b);
    }

    #[test]
    fn refuses_bad_budgets_with_reasons() {
        let p = |budget, n: f64, loss| IsoPoint {
            budget,
            n,
            d: budget / (6.0 * n),
            loss,
        };
        let points = vec![
            p(1e15, 1e6, 3.0),
            p(1e15, 2e6, 2.9),
            // concave
            p(1e16, 1e6, 3.0),
            p(1e16, 2e6, 3.2),
            p(1e16, 4e6, 3.0),
            // minimum beyond the largest size
            p(1e17, 1e6, 3.0),
            p(1e17, 2e6, 2.8),
            p(1e17, 4e6, 2.7),
        ];
        let refusals = fit(&points).unwrap_err();
        assert!(matches!(refusals[0], Refusal::TooFewSizes { sizes: 2, .. }));
        assert!(matches!(refusals[1], Refusal::OpensDownward { .. }));
        assert!(matches!(refusals[2], Refusal::VertexOutside { .. }));
        assert!(
            refusals[2]
                .to_string()
                .contains("outside the sampled sizes")
        );
    }
}
