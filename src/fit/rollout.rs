//! The rollout audit (OLMo-core's model ladder): fit every law on the smallest k sizes and
//! predict size k + 1, for every k from 3 up — a law's error as the ladder grows, not one
//! hold-out. Each fold refits every law from its full start grid: the free-E Chinchilla law,
//! its reduced forms (E fixed at the known floor, E = 0) and, when the study fits it, the
//! over-training law.

use serde::{Deserialize, Serialize};

use super::chinchilla::{self, Point, StartGrid};
use super::{overtrain, reduced};

/// Fewest sizes a fold fits.
pub const MIN_FITTED_SIZES: usize = 3;

/// One fold: the law fitted on the smallest `fitted_sizes` sizes predicts the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutFold {
    pub fitted_sizes: usize,
    /// The predicted size's N and how many runs it has.
    pub n: f64,
    pub runs: usize,
    /// Per law (`free_e`, `fixed_e`, `zero_e`, `overtrain`): the largest relative error on
    /// the predicted size's runs.
    pub errors: Vec<(String, f64)>,
}

/// A law's errors over the folds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutLaw {
    pub form: String,
    /// Mean over the folds of each fold's largest relative error, and the largest of all.
    pub mean_error: f64,
    pub max_error: f64,
    pub folds: usize,
}

/// `fits.rollout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutReport {
    pub folds: Vec<RolloutFold>,
    /// Ranked by mean error (lowest first).
    pub laws: Vec<RolloutLaw>,
}

/// The audit over `points`; `None` with fewer than [`MIN_FITTED_SIZES`] + 1 sizes.
pub fn rollout(
    points: &[Point],
    delta: f64,
    grid: &StartGrid,
    known_e: Option<f64>,
    with_overtrain: bool,
) -> Option<RolloutReport> {
    let mut sizes: Vec<f64> = points.iter().map(|p| p.n).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    if sizes.len() <= MIN_FITTED_SIZES {
        return None;
    }
    let mut folds = Vec::new();
    for (k, &size) in sizes.iter().enumerate().skip(MIN_FITTED_SIZES) {
        let train: Vec<Point> = points.iter().filter(|p| p.n < size).copied().collect();
        let test: Vec<Point> = points.iter().filter(|p| p.n == size).copied().collect();
        let worst = |loss: &dyn Fn(f64, f64) -> f64| {
            test.iter()
                .map(|p| (loss(p.n, p.d) / p.loss - 1.0).abs())
                .fold(0.0, f64::max)
        };
        let mut errors = Vec::new();
        if let Ok(full) = chinchilla::fit(&train, delta, grid) {
            for c in reduced::compare(&train, &full.law, known_e, delta) {
                errors.push((c.form.clone(), worst(&|n, d| c.law.loss(n, d))));
            }
        }
        if with_overtrain && let Some(o) = overtrain::fit(&train, delta) {
            errors.push(("overtrain".into(), worst(&|n, d| o.law.loss(n, d))));
        }
        errors.retain(|(_, e)| e.is_finite());
        folds.push(RolloutFold {
            fitted_sizes: k,
            n: size,
            runs: test.len(),
            errors,
        });
    }
    let mut forms: Vec<String> = Vec::new();
    for f in &folds {
        for (form, _) in &f.errors {
            if !forms.contains(form) {
                forms.push(form.clone());
            }
        }
    }
    let mut laws: Vec<RolloutLaw> = forms
        .into_iter()
        .map(|form| {
            let errs: Vec<f64> = folds
                .iter()
                .filter_map(|f| f.errors.iter().find(|(x, _)| *x == form).map(|e| e.1))
                .collect();
            RolloutLaw {
                mean_error: errs.iter().sum::<f64>() / errs.len() as f64,
                max_error: errs.iter().copied().fold(0.0, f64::max),
                folds: errs.len(),
                form,
            }
        })
        .collect();
    laws.sort_by(|a, b| a.mean_error.total_cmp(&b.mean_error));
    Some(RolloutReport { folds, laws })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On noise-free points of a Chinchilla law every fold predicts the next size exactly
    /// with the free-E law; a ladder of three sizes has no fold.
    #[test]
    fn the_free_law_predicts_every_next_size_of_its_own_points() {
        let law = chinchilla::CHINCHILLA_2022;
        let mut points = Vec::new();
        for i in 0..5 {
            for j in 0..4 {
                let (n, d) = (1e7 * 3f64.powi(i), 2e8 * 3f64.powi(j));
                points.push(Point {
                    n,
                    d,
                    loss: law.loss(n, d),
                });
            }
        }
        let r = rollout(&points, 1e-3, &StartGrid::coarse(), Some(1.69), true).unwrap();
        assert_eq!(r.folds.len(), 2);
        assert_eq!(r.folds[0].fitted_sizes, 3);
        assert_eq!(r.folds[0].runs, 4);
        let free = r.laws.iter().find(|l| l.form == "free_e").unwrap();
        assert!(free.max_error < 1e-4, "{r:?}");
        assert!(r.laws.iter().any(|l| l.form == "overtrain"));
        // Ranked by mean error.
        assert!(
            r.laws
                .windows(2)
                .all(|w| w[0].mean_error <= w[1].mean_error)
        );
        let three: Vec<Point> = points.iter().filter(|p| p.n < 1e7 * 9.5).copied().collect();
        assert!(rollout(&three, 1e-3, &StartGrid::coarse(), None, false).is_none());
    }
}
