//! The rollout audit (OLMo-core's model ladder): fit every law on the smallest k sizes and
//! predict size k + 1, for every k from 3 up — a law's error as the ladder grows, not one
//! hold-out. Each fold refits every law from its full start grid: the free-E Chinchilla law,
//! its reduced forms (E fixed at the known floor, E = 0) and, when the study fits it, the
//! over-training law. The leave-one-out over token counts refits the same laws without each
//! token count in turn and predicts it: how well the D term interpolates (and, at the ends,
//! extrapolates) the data axis.

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
pub fn rollout(points: &[Point], laws: &FoldLaws) -> Option<RolloutReport> {
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
        folds.push(RolloutFold {
            fitted_sizes: k,
            n: size,
            runs: test.len(),
            errors: fold_errors(&train, &test, laws),
        });
    }
    let laws = rank(folds.iter().map(|f| &f.errors));
    Some(RolloutReport { folds, laws })
}

/// Which laws every fold refits, and how.
#[derive(Debug, Clone, Copy)]
pub struct FoldLaws<'a> {
    pub delta: f64,
    pub grid: &'a StartGrid,
    /// The known floor the `fixed_e` form holds E at.
    pub known_e: Option<f64>,
    pub overtrain: bool,
}

/// Every law fitted on `train`, and its largest relative error on `test`.
fn fold_errors(train: &[Point], test: &[Point], laws: &FoldLaws) -> Vec<(String, f64)> {
    let worst = |loss: &dyn Fn(f64, f64) -> f64| {
        test.iter()
            .map(|p| (loss(p.n, p.d) / p.loss - 1.0).abs())
            .fold(0.0, f64::max)
    };
    let mut errors = Vec::new();
    if let Ok(full) = chinchilla::fit(train, laws.delta, laws.grid) {
        for c in reduced::compare(train, &full.law, laws.known_e, laws.delta) {
            errors.push((c.form.clone(), worst(&|n, d| c.law.loss(n, d))));
        }
    }
    if laws.overtrain
        && let Some(o) = overtrain::fit(train, laws.delta)
    {
        errors.push(("overtrain".into(), worst(&|n, d| o.law.loss(n, d))));
    }
    errors.retain(|(_, e)| e.is_finite());
    errors
}

/// Each law's mean and largest fold error, ranked by the mean (lowest first); laws in the
/// order they first appear.
fn rank<'a>(folds: impl Iterator<Item = &'a Vec<(String, f64)>> + Clone) -> Vec<RolloutLaw> {
    let mut forms: Vec<String> = Vec::new();
    for f in folds.clone() {
        for (form, _) in f {
            if !forms.contains(form) {
                forms.push(form.clone());
            }
        }
    }
    let mut laws: Vec<RolloutLaw> = forms
        .into_iter()
        .map(|form| {
            let errs: Vec<f64> = folds
                .clone()
                .filter_map(|f| f.iter().find(|(x, _)| *x == form).map(|e| e.1))
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
    laws
}

/// One leave-one-out fold: the laws fitted without token count `tokens` predict its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenFold {
    pub tokens: f64,
    /// Token counts the fold fitted, and the runs it predicts.
    pub fitted_token_counts: usize,
    pub runs: usize,
    /// Per law: the largest relative error on the left-out runs.
    pub errors: Vec<(String, f64)>,
}

/// `fits.leave_one_out`: the leave-one-out over token counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaveOneOutReport {
    pub folds: Vec<TokenFold>,
    /// Ranked by mean error (lowest first).
    pub laws: Vec<RolloutLaw>,
}

/// Fewest token counts a leave-one-out fold fits.
pub const MIN_FITTED_TOKEN_COUNTS: usize = 3;

/// The leave-one-out over `points`' token counts; `None` with fewer than
/// [`MIN_FITTED_TOKEN_COUNTS`] + 1 of them.
pub fn leave_one_out_tokens(points: &[Point], laws: &FoldLaws) -> Option<LeaveOneOutReport> {
    let mut counts: Vec<f64> = points.iter().map(|p| p.d).collect();
    counts.sort_by(f64::total_cmp);
    counts.dedup();
    if counts.len() <= MIN_FITTED_TOKEN_COUNTS {
        return None;
    }
    let folds: Vec<TokenFold> = counts
        .iter()
        .map(|&d| {
            let train: Vec<Point> = points.iter().filter(|p| p.d != d).copied().collect();
            let test: Vec<Point> = points.iter().filter(|p| p.d == d).copied().collect();
            TokenFold {
                tokens: d,
                fitted_token_counts: counts.len() - 1,
                runs: test.len(),
                errors: fold_errors(&train, &test, laws),
            }
        })
        .collect();
    let laws = rank(folds.iter().map(|f| &f.errors));
    Some(LeaveOneOutReport { folds, laws })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Noise-free points of Chinchilla's law: `sizes` × `counts`, each 3× the last.
    fn ladder(sizes: i32, counts: i32) -> Vec<Point> {
        let law = chinchilla::CHINCHILLA_2022;
        let mut points = Vec::new();
        for i in 0..sizes {
            for j in 0..counts {
                let (n, d) = (1e7 * 3f64.powi(i), 2e8 * 3f64.powi(j));
                points.push(Point {
                    n,
                    d,
                    loss: law.loss(n, d),
                });
            }
        }
        points
    }

    /// On noise-free points of a Chinchilla law every fold predicts the next size exactly
    /// with the free-E law; a ladder of three sizes has no fold.
    #[test]
    fn the_free_law_predicts_every_next_size_of_its_own_points() {
        let points = ladder(5, 4);
        let grid = StartGrid::coarse();
        let laws = FoldLaws {
            delta: 1e-3,
            grid: &grid,
            known_e: Some(1.69),
            overtrain: true,
        };
        let r = rollout(&points, &laws).unwrap();
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
        assert!(rollout(&three, &laws).is_none());
    }

    /// Leaving each token count out of noise-free points: every fold predicts it exactly
    /// with the free-E law; three token counts leave no fold.
    #[test]
    fn leaving_one_token_count_out_predicts_it() {
        let points = ladder(4, 4);
        let grid = StartGrid::coarse();
        let laws = FoldLaws {
            delta: 1e-3,
            grid: &grid,
            known_e: None,
            overtrain: false,
        };
        let r = leave_one_out_tokens(&points, &laws).unwrap();
        assert_eq!(r.folds.len(), 4);
        assert!(
            r.folds
                .iter()
                .all(|f| f.runs == 4 && f.fitted_token_counts == 3)
        );
        let free = r.laws.iter().find(|l| l.form == "free_e").unwrap();
        assert!(free.max_error < 1e-4, "{r:?}");
        assert_eq!(free.folds, 4);
        let three: Vec<Point> = points
            .iter()
            .filter(|p| p.d < 2e8 * 20.0)
            .copied()
            .collect();
        assert!(leave_one_out_tokens(&three, &laws).is_none());
    }
}
