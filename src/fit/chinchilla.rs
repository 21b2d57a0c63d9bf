//! Chinchilla approach 3: L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, §3.3 and
//! Appendix D.2), fitted as Besiroglu et al. 2024 replicate it:
//!
//! - parameters θ = (a, b, e, α, β) with A = eᵃ, B = eᵇ, E = eᵉ;
//! - prediction ln L̂ = LSE(a − α ln N, b − β ln D, e);
//! - objective Σᵢ Huber_δ(ln L̂ᵢ − ln Lᵢ), δ = 10⁻³ (a sum, not a mean);
//! - L-BFGS from every point of a start grid, best objective kept.
//!
//! Pure numerics: no I/O, no knowledge of where the points came from.

use rayon::prelude::*;

use super::lanes::Chunked;
use super::lbfgs::{Objective, Settings, minimize};
use crate::isa::Isa;

/// Tolerances of each start of the grid (and of warm bootstrap refits): scipy's L-BFGS-B
/// defaults (ftol = 1e7·ε ≈ 2.2e-9, gtol = 1e-5), which Hoffmann et al. and Besiroglu et al.
/// used. The best start is then polished with [`Settings::default`]'s tight tolerances.
const SEARCH: Settings = Settings {
    max_iterations: 15000,
    gradient_tolerance: 1e-5,
    relative_tolerance: 2.220446049250313e-9,
};

/// One observed run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Parameters N.
    pub n: f64,
    /// Training tokens D.
    pub d: f64,
    pub loss: f64,
}

/// Parameters the free-E law fits (E, A, B, α, β).
pub const PARAMETERS: usize = 5;

/// The fitted law (serialised as `{E, A, B, alpha, beta}`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Law {
    #[serde(rename = "E")]
    pub e: f64,
    #[serde(rename = "A")]
    pub a: f64,
    #[serde(rename = "B")]
    pub b: f64,
    pub alpha: f64,
    pub beta: f64,
}

/// Hoffmann et al. 2022's published constants (§3.3), the law tests fit against.
#[cfg(test)]
pub const CHINCHILLA_2022: Law = Law {
    e: 1.69,
    a: 406.4,
    b: 410.7,
    alpha: 0.34,
    beta: 0.28,
};

impl Law {
    pub fn loss(&self, n: f64, d: f64) -> f64 {
        self.e + self.a / n.powf(self.alpha) + self.b / d.powf(self.beta)
    }

    fn from_theta(theta: &[f64; 5]) -> Law {
        Law {
            a: theta[0].exp(),
            b: theta[1].exp(),
            e: theta[2].exp(),
            alpha: theta[3],
            beta: theta[4],
        }
    }
}

/// A grid fit's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChinchillaFit {
    pub law: Law,
    /// Σ Huber at the optimum.
    pub objective: f64,
    pub starts: usize,
    /// Starts that ended within 1e-9 (relative) of the best objective.
    pub starts_at_best: usize,
    /// Euclidean norm of the objective's gradient in θ at the optimum.
    pub grad_norm: f64,
    /// The optimum in the fitted parameterisation θ = (a, b, e, α, β).
    pub theta: [f64; 5],
}

/// Why a fit could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("{law}: {count} points cannot determine {params} parameters")]
    TooFewPoints {
        law: &'static str,
        count: usize,
        params: usize,
    },
    #[error(
        "{law}: point {index} has a non-positive or non-finite value (N {n}, D {d}, loss {loss})"
    )]
    BadPoint {
        law: &'static str,
        index: usize,
        n: f64,
        d: f64,
        loss: f64,
    },
    #[error("{law}: {why}")]
    Degenerate { law: &'static str, why: String },
}

/// Points in log space, checked.
struct Prepared {
    chunked: Chunked,
    isa: Isa,
}

fn prepare(points: &[Point]) -> Result<Prepared, FitError> {
    const LAW: &str = "chinchilla";
    if points.len() < 5 {
        return Err(FitError::TooFewPoints {
            law: LAW,
            count: points.len(),
            params: 5,
        });
    }
    for (index, p) in points.iter().enumerate() {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        if !(ok(p.n) && ok(p.d) && ok(p.loss)) {
            return Err(FitError::BadPoint {
                law: LAW,
                index,
                n: p.n,
                d: p.d,
                loss: p.loss,
            });
        }
    }
    let distinct = |f: &dyn Fn(&Point) -> f64| {
        let first = f(&points[0]);
        points.iter().any(|p| f(p) != first)
    };
    if !distinct(&|p| p.n) || !distinct(&|p| p.d) {
        return Err(FitError::Degenerate {
            law: LAW,
            why: "needs at least two distinct model sizes and two distinct token counts".into(),
        });
    }
    let ln_n: Vec<f64> = points.iter().map(|p| p.n.ln()).collect();
    let ln_d: Vec<f64> = points.iter().map(|p| p.d.ln()).collect();
    let ln_l: Vec<f64> = points.iter().map(|p| p.loss.ln()).collect();
    Ok(Prepared {
        chunked: Chunked::new(&ln_n, &ln_d, &ln_l),
        isa: crate::isa::detect(),
    })
}

/// Σ Huber_δ(ln L̂ − ln L) and its gradient in θ = (a, b, e, α, β), evaluated eight points
/// at a time ([`super::lanes`]).
fn objective(theta: &[f64; 5], data: &Prepared, delta: f64) -> (f64, [f64; 5]) {
    super::lanes::objective(data.isa, theta, &data.chunked, delta)
}

/// Start grids for θ = (a, b, e, α, β).
#[derive(Debug, Clone)]
pub struct StartGrid {
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub e: Vec<f64>,
    pub alpha: Vec<f64>,
    pub beta: Vec<f64>,
}

impl StartGrid {
    /// Hoffmann et al.'s grid: α, β ∈ {0, 0.5, …, 2}, e ∈ {−1, −0.5, …, 1},
    /// a, b ∈ {0, 5, …, 25}: 4,500 starts.
    pub fn full() -> Self {
        let halves = vec![0.0, 0.5, 1.0, 1.5, 2.0];
        let fives = vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0];
        StartGrid {
            a: fives.clone(),
            b: fives,
            e: vec![-1.0, -0.5, 0.0, 0.5, 1.0],
            alpha: halves.clone(),
            beta: halves,
        }
    }

    /// Every third value of the full grid's a and b, e ∈ {−1, 0, 1}: 243 starts.
    pub fn coarse() -> Self {
        StartGrid {
            a: vec![0.0, 10.0, 20.0],
            b: vec![0.0, 10.0, 20.0],
            e: vec![-1.0, 0.0, 1.0],
            alpha: vec![0.0, 1.0, 2.0],
            beta: vec![0.0, 1.0, 2.0],
        }
    }

    pub fn starts(&self) -> Vec<[f64; 5]> {
        let mut out = Vec::new();
        for &a in &self.a {
            for &b in &self.b {
                for &e in &self.e {
                    for &alpha in &self.alpha {
                        for &beta in &self.beta {
                            out.push([a, b, e, alpha, beta]);
                        }
                    }
                }
            }
        }
        out
    }
}

/// Fit from every start of `grid` (in parallel); the best objective wins, ties to the
/// earliest start, so the result does not depend on thread scheduling.
pub fn fit(points: &[Point], delta: f64, grid: &StartGrid) -> Result<ChinchillaFit, FitError> {
    let data = prepare(points)?;
    let f = |theta: &[f64; 5]| objective(theta, &data, delta);
    let starts = grid.starts();
    let results: Vec<(f64, [f64; 5])> = starts
        .par_iter()
        .map(|x0| {
            let m = minimize(&f, *x0, &SEARCH);
            (m.f, m.x)
        })
        .collect();
    best_of(&f, &results, starts.len())
}

/// Iterations every start gets in the probe phase of [`fit_pruned`].
pub const PROBE_ITERATIONS: usize = 10;
/// Starts that continue to convergence after the probe phase of [`fit_pruned`].
pub const PRUNED_KEEP: usize = 64;

/// The grid search with pruning, for bootstrap resamples that want a global search at a
/// sixth of the price: [`PROBE_ITERATIONS`] L-BFGS iterations from every start of `grid`,
/// then only the [`PRUNED_KEEP`] starts with the lowest objective so far continue (from
/// where they stopped) to convergence. `starts_at_best` counts among those that continued.
/// A start that ends at the global optimum is almost always among the best after ten
/// iterations; a test checks the pruned search reaches the full grid's optimum on Epoch's
/// Chinchilla data and on resamples of it.
pub fn fit_pruned(
    points: &[Point],
    delta: f64,
    grid: &StartGrid,
) -> Result<ChinchillaFit, FitError> {
    let data = prepare(points)?;
    let f = |theta: &[f64; 5]| objective(theta, &data, delta);
    let starts = grid.starts();
    let probe = Settings {
        max_iterations: PROBE_ITERATIONS,
        ..SEARCH
    };
    let probed: Vec<(f64, [f64; 5])> = starts
        .par_iter()
        .map(|x0| {
            let m = minimize(&f, *x0, &probe);
            (m.f, m.x)
        })
        .collect();
    // The most promising starts, ties to the earliest (deterministic).
    let mut order: Vec<usize> = (0..probed.len())
        .filter(|&i| probed[i].0.is_finite())
        .collect();
    order.sort_by(|&i, &j| probed[i].0.total_cmp(&probed[j].0).then(i.cmp(&j)));
    order.truncate(PRUNED_KEEP);
    order.sort_unstable();
    let results: Vec<(f64, [f64; 5])> = order
        .par_iter()
        .map(|&i| {
            let m = minimize(&f, probed[i].1, &SEARCH);
            (m.f, m.x)
        })
        .collect();
    best_of(&f, &results, starts.len())
}

/// The best of the searched starts (ties to the earliest), polished to full precision.
fn best_of(
    f: Objective<'_, 5>,
    results: &[(f64, [f64; 5])],
    starts: usize,
) -> Result<ChinchillaFit, FitError> {
    let (_, &(search_f, search_x)) = results
        .iter()
        .enumerate()
        .filter(|(_, (v, _))| v.is_finite())
        .min_by(|a, b| a.1.0.total_cmp(&b.1.0).then(a.0.cmp(&b.0)))
        .ok_or_else(|| FitError::Degenerate {
            law: "chinchilla",
            why: "no start reached a finite objective".into(),
        })?;
    // Polish the winner to full precision; a start counts as reaching the best when its
    // search ended within 1e-9 (relative) of the polished objective.
    let polished = minimize(f, search_x, &Settings::default());
    let (best_f, best_x) = if polished.f <= search_f {
        (polished.f, polished.x)
    } else {
        (search_f, search_x)
    };
    let starts_at_best = results
        .iter()
        .filter(|(v, _)| (v - best_f).abs() <= 1e-9 * best_f.abs())
        .count();
    let (_, g) = f(&best_x);
    Ok(ChinchillaFit {
        law: Law::from_theta(&best_x),
        objective: best_f,
        starts,
        starts_at_best,
        grad_norm: g.iter().map(|v| v * v).sum::<f64>().sqrt(),
        theta: best_x,
    })
}

/// One L-BFGS run from `start` (a warm start, e.g. the full-data optimum for a bootstrap
/// resample).
pub fn refine(points: &[Point], delta: f64, start: [f64; 5]) -> Result<ChinchillaFit, FitError> {
    let data = prepare(points)?;
    let f = |theta: &[f64; 5]| objective(theta, &data, delta);
    let m = minimize(&f, start, &SEARCH);
    if !m.f.is_finite() {
        return Err(FitError::Degenerate {
            law: "chinchilla",
            why: "the warm start did not reach a finite objective".into(),
        });
    }
    Ok(ChinchillaFit {
        law: Law::from_theta(&m.x),
        objective: m.f,
        starts: 1,
        starts_at_best: 1,
        grad_norm: m.gradient.iter().map(|v| v * v).sum::<f64>().sqrt(),
        theta: m.x,
    })
}

/// The compute-optimal split of a budget C = 6·N·D under a fitted law (Hoffmann et al. 2022,
/// §3.3, eq. 4): N_opt = G·(C/6)^a, D_opt = G⁻¹·(C/6)^b with
/// G = (αA/(βB))^(1/(α+β)), a = β/(α+β), b = α/(α+β).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Allocation {
    pub compute: f64,
    pub n_opt: f64,
    pub d_opt: f64,
    pub tokens_per_param: f64,
    pub loss: f64,
}

pub fn allocate(law: &Law, compute: f64) -> Allocation {
    let Law {
        a, b, alpha, beta, ..
    } = *law;
    let g = (alpha * a / (beta * b)).powf(1.0 / (alpha + beta));
    let n_opt = g * (compute / 6.0).powf(beta / (alpha + beta));
    let d_opt = (compute / 6.0).powf(alpha / (alpha + beta)) / g;
    Allocation {
        compute,
        n_opt,
        d_opt,
        tokens_per_param: d_opt / n_opt,
        loss: law.loss(n_opt, d_opt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinchilla_allocation_matches_the_paper() {
        // Unrounded Chinchilla parameters (Besiroglu et al. 2024, Table 1 note).
        let law = Law {
            e: 1.69337,
            a: 406.401,
            b: 410.723,
            alpha: 0.33917084,
            beta: 0.2849083,
        };
        let alloc = allocate(&law, 5.76e23);
        assert!(
            (alloc.n_opt / 4.04e10 - 1.0).abs() < 0.01,
            "{}",
            alloc.n_opt
        );
        assert!((6.0 * alloc.n_opt * alloc.d_opt / 5.76e23 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn recovers_a_known_law_from_noise_free_points() {
        let truth = Law {
            e: 1.8,
            a: 480.0,
            b: 2100.0,
            alpha: 0.35,
            beta: 0.37,
        };
        let mut points = Vec::new();
        for n in [1e7, 3e7, 1e8, 3e8, 1e9] {
            for d in [1e9, 3e9, 1e10, 3e10] {
                points.push(Point {
                    n,
                    d,
                    loss: truth.loss(n, d),
                });
            }
        }
        let fit = fit(&points, 1e-3, &StartGrid::coarse()).unwrap();
        assert!(fit.objective < 1e-16, "{}", fit.objective);
        assert!((fit.law.alpha - 0.35).abs() < 1e-4, "{:?}", fit.law);
        assert!((fit.law.beta - 0.37).abs() < 1e-4, "{:?}", fit.law);
        assert!((fit.law.e - 1.8).abs() < 1e-4, "{:?}", fit.law);
    }

    #[test]
    fn degenerate_inputs_are_typed_errors() {
        let p = |n: f64, d: f64, loss: f64| Point { n, d, loss };
        let few = vec![p(1e6, 1e9, 3.0); 3];
        assert!(matches!(
            fit(&few, 1e-3, &StartGrid::coarse()),
            Err(FitError::TooFewPoints { .. })
        ));
        let one_size: Vec<Point> = (1..=6).map(|i| p(1e6, 1e9 * i as f64, 3.0)).collect();
        assert!(matches!(
            fit(&one_size, 1e-3, &StartGrid::coarse()),
            Err(FitError::Degenerate { .. })
        ));
        let mut nan: Vec<Point> = (1..=6)
            .map(|i| p(1e6 * i as f64, 1e9 * i as f64, 3.0))
            .collect();
        nan[4].loss = f64::NAN;
        let err = fit(&nan, 1e-3, &StartGrid::coarse()).unwrap_err();
        assert!(err.to_string().contains("point 4"), "{err}");
        // All losses equal: a valid (flat) law, never a NaN.
        let flat: Vec<Point> = (1..=6)
            .map(|i| p(1e6 * i as f64, 1e9 * (7 - i) as f64, 3.0))
            .collect();
        let f = fit(&flat, 1e-3, &StartGrid::coarse()).unwrap();
        assert!(f.objective.is_finite() && f.law.e.is_finite());
    }

    /// Epoch AI's 245 Chinchilla points, 5 highest losses dropped (Besiroglu et al. 2024),
    /// read from `$SCALEBOOK_REFERENCE_DATA/svg_extracted_data.csv` (never copied here).
    #[test]
    fn reproduces_the_epoch_reference_fit() {
        let Some(dir) = crate::testing::reference_data() else {
            crate::testing::skip(
                "reproduces_the_epoch_reference_fit",
                "no reference data (set SCALEBOOK_REFERENCE_DATA, or put shared/ beside the repository)",
            );
            return;
        };
        let path = dir.join("svg_extracted_data.csv");
        let text = std::fs::read_to_string(&path).expect("reference CSV");
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (cn, cc, cl) = (col("Model Size"), col("Training FLOP"), col("loss"));
        let mut points: Vec<Point> = lines
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                let n: f64 = f[cn].parse().unwrap();
                let c: f64 = f[cc].parse().unwrap();
                Point {
                    n,
                    d: c / (6.0 * n),
                    loss: f[cl].parse().unwrap(),
                }
            })
            .collect();
        assert_eq!(points.len(), 245);
        points.sort_by(|a, b| a.loss.total_cmp(&b.loss));
        points.truncate(240);
        let fit = fit(&points, 1e-3, &StartGrid::full()).unwrap();
        let law = fit.law;
        assert!(
            (fit.objective - 1.01827402e-3).abs() < 3e-11,
            "objective {:e}",
            fit.objective
        );
        assert!((law.e - 1.8172).abs() < 1e-4, "{law:?}");
        assert!((law.alpha - 0.34731).abs() < 5e-5, "{law:?}");
        assert!((law.beta - 0.36717).abs() < 5e-5, "{law:?}");
        assert!((law.a / 477.8 - 1.0).abs() < 1e-3, "{law:?}");
        assert!((law.b / 2143.4 - 1.0).abs() < 1e-3, "{law:?}");
        assert_eq!(fit.starts, 4500);
        assert!(fit.starts_at_best >= 1 && fit.grad_norm < 1e-6, "{fit:?}");

        // The pruned grid reaches the full grid's optimum, on the data and on resamples.
        let same = |full: &ChinchillaFit, pruned: &ChinchillaFit, what: &str| {
            assert!(
                (pruned.objective / full.objective - 1.0).abs() < 1e-9,
                "{what}: pruned {:e} vs full {:e}",
                pruned.objective,
                full.objective
            );
            assert!((pruned.law.alpha - full.law.alpha).abs() < 1e-6, "{what}");
            assert!((pruned.law.beta - full.law.beta).abs() < 1e-6, "{what}");
        };
        let grid = StartGrid::full();
        same(
            &fit,
            &fit_pruned(&points, 1e-3, &grid).unwrap(),
            "all points",
        );
        for seed in 0..2u64 {
            let mut rng = crate::rng::SplitMix64::new(seed);
            let sample: Vec<Point> = (0..points.len())
                .map(|_| points[rng.below(points.len() as u64) as usize])
                .collect();
            let full = super::fit(&sample, 1e-3, &grid).unwrap();
            let pruned = fit_pruned(&sample, 1e-3, &grid).unwrap();
            same(&full, &pruned, &format!("resample {seed}"));
        }
    }
}
