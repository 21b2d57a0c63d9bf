//! Learning-rate transfer (`train.lr_transfer`): the sweep trains some sizes at every
//! learning rate of `train.lr`; once every one of their runs has a record, each other size
//! (and each `check` size) trains once per token count at the learning rate the sweep gives
//! it — the *transferred* runs, "lr decided after the sweep".
//!
//! - `rule: mup` — under µP the optimum carries across widths: at each token count, the
//!   geometric mean of the swept sizes' optima there (each the best swept value refined to
//!   the vertex of the parabola through it and its neighbours, as the fits' envelope does).
//! - `rule: law` — η*(N, D) = c·N^a·D^b fitted by least squares to the swept points' optima
//!   (the fits' `hyper` law), evaluated at the size and token count.
//!
//! The learning rate is rounded to two significant figures, so a refit that moves the
//! optimum in its last bits does not re-key the transferred runs. A transferred run's key is
//! a function of the sweep's records: `verify` and every command that reads the study decide
//! it again from them, as they do the final run.

use serde::{Deserialize, Serialize};

use super::plan::{compact_real, gpt_config, points, run_spec};
use super::{ParamsConvention, RunSpec, TrainSpec, TrainingPlan, TransferRule};
use crate::data::{DataIdentity, DataSpec};
use crate::fit::hyper::{SweepRun, envelope, fit_eta};

/// A (size, tokens) point whose learning rate is decided after the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Deferred {
    /// Index into `ModelSpec::sizes`.
    pub index: usize,
    pub size: String,
    /// Trained tokens (whole steps).
    pub tokens: u64,
    /// The point's name (`l2-d64-t1e5`).
    pub point: String,
    /// A `check` size: also swept.
    pub checked: bool,
}

/// Every transferred point of the plan, in plan order (size, then tokens).
pub fn deferred(t: &TrainingPlan) -> Vec<Deferred> {
    let Some(x) = &t.transfer else {
        return Vec::new();
    };
    let shared = super::naming::shared_shape_names(&t.model);
    points(t)
        .into_iter()
        .filter(|(index, ..)| !x.swept.contains(index))
        .map(|(index, tokens, _, label)| {
            let cfg = gpt_config(&t.model, index, DataSpec::vocab(&t.data));
            let point = if shared.contains(&index) {
                format!("{}-h{}-{label}", cfg.short_name(), cfg.heads)
            } else {
                format!("{}-{label}", cfg.short_name())
            };
            Deferred {
                index,
                size: t.model.sizes[index].name.clone(),
                tokens,
                point,
                checked: x.checked.contains(&index),
            }
        })
        .collect()
}

/// One run of a swept size as the decision reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct SweptRun {
    pub name: String,
    pub index: usize,
    pub tokens: u64,
    /// Parameters in the fits' convention.
    pub n: f64,
    pub lr: f64,
    /// Batch size (sequences).
    pub batch: u64,
    /// Final validation loss; `None` when the run diverged or failed.
    pub loss: Option<f64>,
}

/// The learning rate one transferred point trains at, and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub size: String,
    pub point: String,
    /// Parameters in the fits' convention, and tokens.
    pub n: f64,
    pub tokens: u64,
    /// Two significant figures: the learning rate the run trains at.
    pub lr: f64,
    /// Before rounding.
    pub lr_exact: f64,
    /// With a batch sweep: the swept batch size nearest (in ln) the one the sweep gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
    /// A `check` size, also swept.
    pub checked: bool,
    /// Outside the swept values' range: an extrapolation of the sweep.
    pub outside_sweep: bool,
    /// Index into `ModelSpec::sizes`.
    #[serde(skip)]
    pub index: usize,
}

/// What the sweep decides.
#[derive(Debug, Clone, PartialEq)]
pub enum Decided {
    Ready(Vec<Decision>),
    /// This many of the swept sizes' runs have no record yet.
    Waiting(usize),
    /// The sweep's records cannot decide it: why.
    Impossible(String),
}

/// Decide every transferred point's learning rate from the swept sizes' runs (`missing`:
/// how many of them have no record yet).
pub fn decide(
    t: &TrainingPlan,
    runs: &[SweptRun],
    missing: usize,
    params: ParamsConvention,
    seed: u64,
) -> Decided {
    let Some(x) = &t.transfer else {
        return Decided::Ready(Vec::new());
    };
    if missing > 0 {
        return Decided::Waiting(missing);
    }
    let sweep: Vec<SweepRun> = runs
        .iter()
        .filter(|r| x.swept.contains(&r.index))
        .map(|r| SweepRun {
            name: r.name.clone(),
            point: format!("{}:{}", r.index, r.tokens),
            n: r.n,
            d: r.tokens as f64,
            lr: r.lr,
            batch: r.batch,
            batch_tokens: (r.batch * t.model.context) as f64,
            flops: 0.0,
            loss: r.loss,
        })
        .collect();
    let choices = envelope(&sweep);
    let vocab = DataSpec::vocab(&t.data);
    let (lo, hi) = (
        t.learning_rates.first().copied().unwrap_or(f64::NAN),
        t.learning_rates.last().copied().unwrap_or(f64::NAN),
    );
    let law = match x.rule {
        TransferRule::Law => match fit_eta(&choices, 0, 0.95, seed) {
            Some(law) => Some(law),
            None => {
                return Decided::Impossible(format!(
                    "η*(N, D) cannot be fitted from the swept points ({} of them finished): \
                     sweep more sizes, or fix the runs that failed",
                    choices.len()
                ));
            }
        },
        TransferRule::Mup => None,
    };
    let mut out = Vec::new();
    for d in deferred(t) {
        let cfg = gpt_config(&t.model, d.index, vocab);
        let n = match params {
            ParamsConvention::Total => crate::model::param_counts(&cfg).total,
            ParamsConvention::NonEmbedding => crate::model::param_counts(&cfg).non_embedding,
        } as f64;
        let exact = match &law {
            Some(law) => law.predict(n, d.tokens as f64),
            None => {
                let at: Vec<f64> = choices
                    .iter()
                    .filter(|c| c.d == d.tokens as f64)
                    .map(|c| c.lr_opt.ln())
                    .collect();
                if at.is_empty() {
                    return Decided::Impossible(format!(
                        "no swept run at {} tokens finished, so {} has no learning rate to take",
                        d.tokens, d.point
                    ));
                }
                (at.iter().sum::<f64>() / at.len() as f64).exp()
            }
        };
        if !(exact.is_finite() && exact > 0.0) {
            return Decided::Impossible(format!(
                "the sweep gives {} a learning rate of {exact}",
                d.point
            ));
        }
        let lr = two_figures(exact.min(1.0));
        let batch = match transferred_batch(t, x.rule, &choices, d.tokens as f64) {
            Ok(b) => b,
            Err(why) => return Decided::Impossible(format!("{}: {why}", d.point)),
        };
        out.push(Decision {
            batch,
            size: d.size,
            point: d.point,
            n,
            tokens: d.tokens,
            lr,
            lr_exact: exact,
            checked: d.checked,
            outside_sweep: lr < lo * (1.0 - 1e-9) || lr > hi * (1.0 + 1e-9),
            index: d.index,
        });
    }
    Decided::Ready(out)
}

/// With a batch sweep, the batch size a transferred point of `tokens` trains at: the swept
/// sizes' B* at those tokens (`mup`: their geometric mean there; `law`: the B*(D) law of
/// every swept point), rounded to the nearest swept batch size in ln B (so the point's tokens
/// stay whole steps of it). `None` without a batch sweep.
fn transferred_batch(
    t: &TrainingPlan,
    rule: TransferRule,
    choices: &[crate::fit::hyper::PointChoice],
    tokens: f64,
) -> Result<Option<u64>, String> {
    if t.batch_sizes.len() < 2 {
        return Ok(None);
    }
    let optima: Vec<(f64, f64)> = choices
        .iter()
        .filter_map(|c| Some((c.d, c.batch.as_ref()?.opt_tokens)))
        .collect();
    let exact = match rule {
        TransferRule::Mup => {
            let at: Vec<f64> = optima
                .iter()
                .filter(|(d, _)| *d == tokens)
                .map(|(_, b)| b.ln())
                .collect();
            if at.is_empty() {
                return Err(format!("no swept run at {tokens} tokens finished"));
            }
            (at.iter().sum::<f64>() / at.len() as f64).exp()
        }
        TransferRule::Law => match crate::fit::batch::fit_law(&optima, 0, 0.95, 0) {
            Some(law) => law.predict(tokens),
            None => return Err("B*(D) cannot be fitted from the swept points".into()),
        },
    } / t.model.context as f64;
    Ok(t.batch_sizes.iter().copied().min_by(|a, b| {
        let miss = |v: u64| (v as f64 / exact).ln().abs();
        miss(*a).total_cmp(&miss(*b))
    }))
}

/// `x` to two significant figures, as the shortest float that prints that way.
pub fn two_figures(x: f64) -> f64 {
    let scale = 10f64.powi(1 - x.log10().floor() as i32);
    let rounded = (x * scale).round() / scale;
    format!("{rounded:.1e}").parse().unwrap_or(rounded)
}

/// The transferred runs of `decisions`, named as the sweep's runs are (`<point>-lr<η>`).
pub fn specs(
    seed: u64,
    t: &TrainingPlan,
    data: &DataIdentity,
    decisions: &[Decision],
) -> Vec<RunSpec> {
    let vocab = DataSpec::vocab(&t.data);
    let shared = super::naming::shared_shape_names(&t.model);
    decisions
        .iter()
        .map(|d| {
            let at_lr = TrainingPlan {
                train: TrainSpec {
                    lr: d.lr,
                    batch: d.batch.unwrap_or(t.train.batch),
                    ..t.train
                },
                transfer: None,
                ..t.clone()
            };
            let model = gpt_config(&t.model, d.index, vocab);
            let label = d.point.rsplit('-').next().unwrap_or_default().to_string();
            let mut spec = run_spec(seed, &at_lr, data, model, &d.size, d.tokens, None, &label);
            if shared.contains(&d.index) {
                spec.point = format!("{}-h{}-{label}", model.short_name(), model.heads);
            }
            spec.name = format!("{}-lr{}", spec.point, compact_real(d.lr));
            if let Some(b) = d.batch {
                spec.name = format!("{}-b{b}", spec.name);
            }
            spec
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_significant_figures() {
        assert_eq!(two_figures(0.012345), 0.012);
        assert_eq!(two_figures(0.0126), 0.013);
        assert_eq!(two_figures(3.04e-3), 3e-3);
        assert_eq!(two_figures(9.96e-4), 1e-3);
    }
}
