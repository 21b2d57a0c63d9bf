//! The method's last step (Hoffmann et al. 2022, §3.4): train one model at the fitted
//! compute-optimal (N_opt, D_opt) for the study's `final.budget`, next to a baseline — the
//! study's smallest model trained on the same tokens — and compare prediction with outcome.
//!
//! N_opt is a real number; a GPT has a shape. The shape rule (documented in the book's study
//! file reference): every depth L in 1..=[`MAX_LAYERS`], the head count h of the study's
//! largest size, and widths d that are multiples of 8·h (whole heads of a multiple-of-8
//! dimension); keep shapes whose aspect ratio d/L lies within a factor [`ASPECT_SLACK`] of the
//! study's own range of ratios (so the final model is the same kind of model the law was
//! fitted on); pick the one whose parameter count (in the fit's convention) is nearest to
//! N_opt in log space, ties to the shallower. Under µP (`model.parametrization: mup`) the
//! depth is the study's (its sizes share one) and any width of whole heads qualifies: the
//! learning rate transfers across widths, not depths. Tokens are D_opt rounded to whole steps.

use super::plan::{run_spec, steps_for};
use super::{ParamsConvention, RunSpec, TrainingPlan};
use crate::data::{DataIdentity, DataSpec};
use crate::model::{GptConfig, param_counts};

/// Deepest final model considered.
pub const MAX_LAYERS: u64 = 48;
/// Widest final model considered.
pub const MAX_D_MODEL: u64 = 8192;
/// The final run's 6·N·D (N in the fit's convention) stays within this fraction of its
/// budget.
pub const BUDGET_TOLERANCE: f64 = 0.10;
/// How far (as a factor) the final model's d/L may stray outside the study's range.
pub const ASPECT_SLACK: f64 = 2.0;

/// The final run and its baseline.
#[derive(Debug, Clone)]
pub struct FinalPlan {
    pub budget: f64,
    /// The law's optimum (N in the fit's convention).
    pub n_opt: f64,
    pub d_opt: f64,
    pub params: ParamsConvention,
    pub run: RunSpec,
    pub baseline: RunSpec,
    /// With a batch sweep: the final run's shape and tokens at the comparison batch size
    /// (`final.compare_batch`), at the learning rate that batch size's own sweep gives it.
    pub neighbour: Option<RunSpec>,
    /// Both trained at the learning rate the fitted η*(N, D) gives their shape and tokens
    /// (a study with a learning-rate sweep), rather than at the study's `train.lr`.
    pub lr_from_law: bool,
    /// The law that placed the optimum when it is a reduced form (`fixed_e`, `zero_e`)
    /// rather than the free-E law: its form and the law itself, which predicts the loss.
    pub reduced: Option<(String, crate::fit::chinchilla::Law)>,
    /// With `final:` limits: the optimum under them (inference share, binding caps).
    pub limits: Option<crate::fit::constrained::LimitedOptimum>,
    /// With `final.law: auto`: why the law that placed it was chosen.
    pub chosen_by: Option<String>,
}

impl FinalPlan {
    /// Every run of the plan: the final run, the baseline and the batch neighbour.
    pub fn specs(&self) -> Vec<RunSpec> {
        let mut out = vec![self.run.clone(), self.baseline.clone()];
        out.extend(self.neighbour.clone());
        out
    }

    /// N of the chosen shape in the fit's convention.
    pub fn n(&self, spec: &RunSpec) -> f64 {
        spec.n(self.params)
    }
}

fn convention_params(cfg: &GptConfig, params: ParamsConvention) -> f64 {
    let p = param_counts(cfg);
    match params {
        ParamsConvention::Total => p.total as f64,
        ParamsConvention::NonEmbedding => p.non_embedding as f64,
    }
}

/// The buildable shape nearest to `n_target` parameters (see the module doc for the rule).
pub fn choose_shape(t: &TrainingPlan, n_target: f64, params: ParamsConvention) -> GptConfig {
    let vocab = DataSpec::vocab(&t.data);
    let largest = t
        .model
        .sizes
        .iter()
        .max_by_key(|s| (s.layers * s.d_model * s.d_model, s.layers))
        .expect("a validated study has sizes");
    let heads = largest.heads.max(1);
    let ratios = t
        .model
        .sizes
        .iter()
        .map(|s| s.d_model as f64 / s.layers as f64);
    let lo = ratios.clone().fold(f64::INFINITY, f64::min) / ASPECT_SLACK;
    let hi = ratios.fold(0.0, f64::max) * ASPECT_SLACK;
    let base = GptConfig {
        layers: largest.layers,
        d_model: largest.d_model,
        heads,
        context: t.model.context,
        vocab,
        tie_embeddings: t.model.tie_embeddings,
        parametrization: t.model.parametrization,
    };
    let mut best = (f64::INFINITY, base);
    let unit = 8 * heads;
    // Under µP the learning rate transfers across widths at one depth only: the final run
    // keeps the study's depth and any width.
    let mup = !t.model.parametrization.is_standard();
    let depths = if mup {
        largest.layers..=largest.layers
    } else {
        1..=MAX_LAYERS
    };
    for layers in depths {
        let mut d = unit;
        while d <= MAX_D_MODEL {
            let ratio = d as f64 / layers as f64;
            if mup || (ratio >= lo && ratio <= hi) {
                let cfg = GptConfig {
                    layers,
                    d_model: d,
                    ..base
                };
                let miss = (convention_params(&cfg, params).ln() - n_target.ln()).abs();
                // Strictly better only: ties keep the shallower shape found first.
                if miss < best.0 {
                    best = (miss, cfg);
                }
            }
            d += unit;
        }
    }
    best.1
}

/// `x` to three significant figures. The final run's learning rate comes from a fitted law
/// whose interval is tens of percent wide; rounded, it does not change — and so neither does
/// the final run's key — when a refit moves the law in its last bits.
fn three_figures(x: f64) -> f64 {
    let scale = 10f64.powi(2 - x.log10().floor() as i32);
    let rounded = (x * scale).round() / scale;
    // Through the decimal form, so the value is the shortest float that prints that way.
    format!("{rounded:.3e}").parse().unwrap_or(rounded)
}

/// η*(N, D) = c·N^a·D^b as (c, a, b), N in the fit's convention.
pub type LrLaw = (f64, f64, f64);

/// The hyper-parameter laws a sweep fitted, which the final run trains at.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HyperLaws {
    /// η*(N, D) (a learning-rate sweep).
    pub lr: Option<LrLaw>,
    /// B*(D) = c·D^b in tokens per step, as (c, b) (a batch sweep).
    pub batch: Option<(f64, f64)>,
    /// The comparison batch size (sequences) and its own η*(N, D), if it has one.
    pub compare: Option<(u64, Option<LrLaw>)>,
}

/// The batch size (sequences) B*(D) gives `tokens`: two significant figures (so a refit that
/// moves the law in its last bits keeps the key), within 1..=65536.
pub fn law_batch(c: f64, b: f64, tokens: f64, context: u64) -> Option<u64> {
    let exact = c * tokens.powf(b) / context as f64;
    if !(exact.is_finite() && exact > 0.0) {
        return None;
    }
    let rounded = super::transfer::two_figures(exact.max(1.0)).round();
    Some((rounded as u64).clamp(1, 1 << 16))
}

/// Plan the final run for `budget` from the law's optimum (`n_opt`, `d_opt`); with the
/// sweep's `laws` the final run and the baseline each train at the learning rate (and batch
/// size) they give them, and a batch sweep adds the neighbour at the comparison batch size.
#[allow(clippy::too_many_arguments)]
pub fn final_plan(
    seed: u64,
    t: &TrainingPlan,
    data: &DataIdentity,
    budget: f64,
    n_opt: f64,
    d_opt: f64,
    params: ParamsConvention,
    laws: HyperLaws,
) -> Option<FinalPlan> {
    if !(n_opt.is_finite() && d_opt.is_finite() && n_opt > 0.0 && d_opt >= 1.0) {
        return None;
    }
    let lr_law = laws.lr;
    let batch = laws
        .batch
        .and_then(|(c, b)| law_batch(c, b, d_opt, t.model.context))
        .unwrap_or(t.train.batch);
    let mut batches = vec![batch];
    batches.extend(laws.compare.map(|(b, _)| b));
    // Tokens are whole steps of the final run's batch and the neighbour's.
    let step = super::step_unit(&batches, t.model.context);
    let shape = choose_shape(t, n_opt, params);
    // The shape's N is N_opt rounded to a buildable model: when that moves 6·N·D more than
    // [`BUDGET_TOLERANCE`] off the budget, D is re-derived from the budget.
    let n_shape = convention_params(&shape, params);
    let d = if (6.0 * n_shape * d_opt / budget - 1.0).abs() > BUDGET_TOLERANCE {
        budget / (6.0 * n_shape)
    } else {
        d_opt
    };
    let tokens = steps_for(d.clamp(1.0, 1e15) as u64, step) * step;
    // The plan at the learning rate η*(N, D) gives `cfg` (the study's own without a law).
    let at_law = |cfg: &GptConfig, law: Option<LrLaw>, batch: u64| -> TrainingPlan {
        let mut out = t.clone();
        out.train.batch = batch;
        if let Some((c, a, b)) = law {
            let lr = c * convention_params(cfg, params).powf(a) * (tokens as f64).powf(b);
            if lr.is_finite() && lr > 0.0 {
                out.train.lr = three_figures(lr.min(1.0));
            }
        }
        out
    };
    let at = |cfg: &GptConfig| at_law(cfg, lr_law, batch);
    let run = run_spec(
        seed,
        &at(&shape),
        data,
        shape,
        "final",
        tokens,
        Some(budget),
        "final",
    );
    let smallest = &t.model.sizes[0];
    let small = crate::study::plan::gpt_config(&t.model, 0, DataSpec::vocab(&t.data));
    let baseline = run_spec(
        seed,
        &at(&small),
        data,
        small,
        &smallest.name,
        tokens,
        Some(budget),
        "baseline",
    );
    // The neighbour: at the comparison batch size's own η* (its sweep's), or the study's lr.
    let neighbour = laws.compare.map(|(b, law)| {
        let mut spec = run_spec(
            seed,
            &at_law(&shape, law, b),
            data,
            shape,
            "final",
            tokens,
            Some(budget),
            &format!("final-b{b}"),
        );
        spec.point = run.point.clone();
        spec
    });
    // The law's batch and learning rate may be the comparison's own: nothing to compare.
    let neighbour = neighbour.filter(|n| n.key != run.key);
    Some(FinalPlan {
        budget,
        n_opt,
        d_opt,
        params,
        run,
        baseline,
        neighbour,
        lr_from_law: lr_law.is_some(),
        reduced: None,
        limits: None,
        chosen_by: None,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::study::from_bytes;

    const STUDY: &str = "\
version: 1
name: fin
title: Final
seed: 1
model:
  context: 64
  sizes:
    - { layers: 2, d_model: 32, heads: 2 }
    - { layers: 3, d_model: 96, heads: 4 }
tokens: [1e5]
train: { batch: 8, lr: 3e-3 }
fits: [{ law: chinchilla, bootstrap: 0 }]
final: { budget: 1e12 }
";

    fn plan_of() -> TrainingPlan {
        let study = from_bytes(STUDY.as_bytes(), Path::new("fin.yaml")).unwrap();
        study.training().unwrap().clone()
    }

    #[test]
    fn shape_is_nearest_buildable_and_keeps_the_studys_aspect() {
        let t = plan_of();
        for target in [5e4, 3e5, 1e6, 4e6] {
            let cfg = choose_shape(&t, target, ParamsConvention::Total);
            let n = param_counts(&cfg).total as f64;
            assert_eq!(cfg.heads, 4);
            assert_eq!(cfg.d_model % 32, 0);
            let ratio = cfg.d_model as f64 / cfg.layers as f64;
            assert!((8.0..=64.0).contains(&ratio), "{cfg:?}");
            // Nearest: no allowed neighbour (one more or fewer width unit) is closer.
            for dd in [cfg.d_model - 32, cfg.d_model + 32] {
                let other = GptConfig { d_model: dd, ..cfg };
                let r = dd as f64 / cfg.layers as f64;
                if dd > 0 && (8.0..=64.0).contains(&r) {
                    let m = param_counts(&other).total as f64;
                    assert!((n.ln() - target.ln()).abs() <= (m.ln() - target.ln()).abs());
                }
            }
            assert!((n / target).ln().abs() < 0.35, "{target} → {n}");
        }
    }

    #[test]
    fn final_and_baseline_share_tokens_and_differ_from_the_grid() {
        let t = plan_of();
        let data = t.data.identity().unwrap();
        let p = final_plan(
            1,
            &t,
            &data,
            1.8e12,
            1e6,
            3e5,
            ParamsConvention::Total,
            HyperLaws::default(),
        )
        .unwrap();
        assert_eq!(p.run.tokens(), p.baseline.tokens());
        assert_eq!(p.run.tokens() % 512, 0);
        // D_opt when the shape's 6·N·D_opt is within 10 % of the budget, else from the budget.
        let n = p.n(&p.run);
        if (6.0 * n * 3e5 / 1.8e12 - 1.0).abs() <= BUDGET_TOLERANCE {
            assert!((p.run.tokens() as f64 - 3e5).abs() <= 512.0);
        } else {
            assert!((6.0 * n * p.run.tokens() as f64 / 1.8e12 - 1.0).abs() <= 0.01);
        }
        assert_eq!(p.baseline.identity.model.d_model, 32);
        assert_ne!(p.run.key, p.baseline.key);
        assert!(
            final_plan(
                1,
                &t,
                &data,
                1e12,
                f64::NAN,
                3e5,
                ParamsConvention::Total,
                HyperLaws::default()
            )
            .is_none()
        );
    }

    /// With η*(N, D) fitted, the final run and the baseline each train at the rate it gives
    /// their own shape; without it, at the study's lr.
    #[test]
    fn the_final_run_trains_at_the_fitted_learning_rate() {
        let t = plan_of();
        let data = t.data.identity().unwrap();
        let law = (0.5, -0.3, 0.1);
        let p = final_plan(
            1,
            &t,
            &data,
            1e12,
            1e6,
            3e5,
            ParamsConvention::Total,
            HyperLaws {
                lr: Some(law),
                ..HyperLaws::default()
            },
        )
        .unwrap();
        assert!(p.lr_from_law);
        for spec in [&p.run, &p.baseline] {
            let n = spec.params.total as f64;
            let want = 0.5 * n.powf(-0.3) * (spec.tokens() as f64).powf(0.1);
            let lr = spec.identity.train.lr;
            // Three significant figures: within half a unit of the third.
            assert!((lr / want - 1.0).abs() < 5e-3, "{lr} vs {want}");
            assert_eq!(lr, format!("{lr:.2e}").parse::<f64>().unwrap());
        }
        // A law moved in its last bits plans the same runs.
        let nudged = (0.5 * (1.0 + 1e-14), -0.3, 0.1);
        let q = final_plan(
            1,
            &t,
            &data,
            1e12,
            1e6,
            3e5,
            ParamsConvention::Total,
            HyperLaws {
                lr: Some(nudged),
                ..HyperLaws::default()
            },
        )
        .unwrap();
        assert_eq!(q.run.key, p.run.key);
        assert_ne!(p.run.identity.train.lr, p.baseline.identity.train.lr);
        let plain = final_plan(
            1,
            &t,
            &data,
            1e12,
            1e6,
            3e5,
            ParamsConvention::Total,
            HyperLaws::default(),
        )
        .unwrap();
        assert!(!plain.lr_from_law);
        assert_eq!(plain.run.identity.train.lr, t.train.lr);
    }
}
