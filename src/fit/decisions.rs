//! Decisions over variants (Magnusson et al. 2025, DataDecide): runs of two or more recipes —
//! a training set, a setting — on the same sizes. Which recipe wins at the target scale, as
//! each recipe's law predicts it, and how sure the bootstrap is; and how often a decision
//! taken at a smaller scale would have chosen right where the larger runs exist.
//!
//! What is compared is lower-is-better: the loss, or the error 1 − the mean of some metrics.
//! Each recipe's law is the Chinchilla law fitted by variable projection ([`super::vpnls`])
//! to its runs' losses; for the error, the error-from-loss law ([`super::metric`]) fitted to
//! its runs carries the law's loss to an error. The bootstrap resamples each recipe's runs and
//! refits both; a recipe's probability is the share of resamples in which it predicts best.
//!
//! Decision accuracy, over every pair of recipes and every cut-off size below the largest
//! size both have: the truth is which recipe is better at that largest size (the mean over
//! the token counts both ran there); the **single-scale** decision compares them at the
//! cut-off size the same way (DataDecide's "rank at one small scale"); the **law** decision
//! compares their laws fitted on the runs up to the cut-off, predicting those largest-size
//! runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::bootstrap::percentile_interval;
use super::metric::{self, ErrorPoint};
use super::options::{DecideBy, ParamsConvention, VariantsRequest};
use super::suite::Row;
use crate::rng::{SplitMix64, hash2};

/// One recipe's prediction at the target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantPrediction {
    pub name: String,
    pub runs: usize,
    pub sizes: usize,
    pub predicted: Option<f64>,
    pub predicted_ci: Option<[f64; 2]>,
    /// The share of bootstrap resamples in which it predicts best.
    pub p_best: f64,
    /// What its run at the target measured, when it has one.
    pub measured: Option<f64>,
}

/// Decisions that agreed with the truth, of those taken.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Accuracy {
    pub agree: usize,
    pub total: usize,
    pub share: Option<f64>,
}

impl Accuracy {
    fn add(&mut self, right: bool) {
        self.agree += usize::from(right);
        self.total += 1;
        self.share = Some(self.agree as f64 / self.total as f64);
    }
}

/// One pair at one cut-off: whether `a` is better at the largest size (the truth), at the
/// cut-off size, and by the laws fitted up to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairDecision {
    pub a: String,
    pub b: String,
    pub cutoff: f64,
    pub largest: f64,
    pub a_better: bool,
    pub single_scale: bool,
    pub law: Option<bool>,
}

/// `fits.decisions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecisionReport {
    /// `loss`, or `error` with the metrics it averages.
    pub by: String,
    pub metrics: Vec<String>,
    /// The target (N, D).
    pub target: [f64; 2],
    pub variants: Vec<VariantPrediction>,
    /// The recipe the laws predict best at the target, and its bootstrap probability.
    pub winner: Option<String>,
    pub probability: Option<f64>,
    /// The recipe best at the target by its runs there, when every recipe has one.
    pub measured_winner: Option<String>,
    pub single_scale: Accuracy,
    pub law: Accuracy,
    pub pairs: Vec<PairDecision>,
    pub bootstrap_resamples: u64,
    pub confidence: f64,
}

/// The compared value of a row: its loss, or 1 − the mean of `metrics`.
fn value(r: &Row, by: &DecideBy) -> Option<f64> {
    match by {
        DecideBy::Loss => Some(r.loss),
        DecideBy::Error(names) => {
            let v: Option<Vec<f64>> = names.iter().map(|n| r.metrics.get(n).copied()).collect();
            let v = v?;
            (!v.is_empty()).then(|| 1.0 - v.iter().sum::<f64>() / v.len() as f64)
        }
    }
}

/// A recipe's law: its loss at (N, D), carried to an error when deciding by error.
struct Law {
    loss: super::chinchilla::Law,
    error: Option<metric::ErrorLaw>,
}

impl Law {
    fn at(&self, n: f64, d: f64) -> f64 {
        let l = self.loss.loss(n, d);
        self.error.map_or(l, |e| e.error(l))
    }
}

fn fit_law(rows: &[&Row], by: &DecideBy) -> Option<Law> {
    let pts = super::suite::points(rows, ParamsConvention::Total);
    let loss = super::vpnls::fit(&pts, None)?.law;
    let error = match by {
        DecideBy::Loss => None,
        DecideBy::Error(_) => {
            let e: Vec<ErrorPoint> = rows
                .iter()
                .filter_map(|r| {
                    Some(ErrorPoint {
                        loss: r.loss,
                        error: value(r, by)?,
                    })
                })
                .collect();
            Some(metric::fit(&e)?.law)
        }
    };
    Some(Law { loss, error })
}

fn same(a: f64, b: f64) -> bool {
    (a / b - 1.0).abs() < 0.01
}

/// The mean value of `rows` at size `n` over the token counts in `tokens`.
fn mean_at(rows: &[&Row], n: f64, tokens: &[f64], by: &DecideBy) -> Option<f64> {
    let v: Vec<f64> = rows
        .iter()
        .filter(|r| same(r.params_total, n) && tokens.iter().any(|&d| same(r.tokens, d)))
        .filter_map(|r| value(r, by))
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The token counts both recipes ran at size `n`.
fn shared_tokens(a: &[&Row], b: &[&Row], n: f64) -> Vec<f64> {
    let mut out: Vec<f64> = a
        .iter()
        .filter(|r| same(r.params_total, n))
        .map(|r| r.tokens)
        .filter(|&d| {
            b.iter()
                .any(|s| same(s.params_total, n) && same(s.tokens, d))
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out.dedup_by(|x, y| same(*x, *y));
    out
}

fn sizes(rows: &[&Row]) -> Vec<f64> {
    let mut out: Vec<f64> = rows.iter().map(|r| r.params_total).collect();
    out.sort_by(f64::total_cmp);
    out.dedup_by(|x, y| same(*x, *y));
    out
}

/// Compare the recipes of `rows` (each row's `variant`); `None` with fewer than two.
pub fn decide(rows: &[Row], options: &VariantsRequest, seed: u64) -> Option<DecisionReport> {
    let mut groups: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        if let Some(v) = r.variant.as_deref()
            && value(r, &options.by).is_some()
        {
            groups.entry(v).or_default().push(r);
        }
    }
    if groups.len() < 2 {
        return None;
    }
    let target = options.target.unwrap_or_else(|| {
        // The largest run of all: the most parameters, then the most tokens.
        let r = rows
            .iter()
            .max_by(|a, b| {
                (a.params_total, a.tokens)
                    .partial_cmp(&(b.params_total, b.tokens))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .expect("two recipes have runs");
        [r.params_total, r.tokens]
    });
    let names: Vec<&str> = groups.keys().copied().collect();
    let laws: Vec<Option<Law>> = names
        .iter()
        .map(|n| fit_law(&groups[n], &options.by))
        .collect();
    let (draws, wins, counted) = bootstrap(&names, &groups, target, options, seed);
    let variants: Vec<VariantPrediction> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let g = &groups[n];
            VariantPrediction {
                name: n.to_string(),
                runs: g.len(),
                sizes: sizes(g).len(),
                predicted: laws[i].as_ref().map(|l| l.at(target[0], target[1])),
                predicted_ci: percentile_interval(&mut draws[i].clone(), options.confidence)
                    .map(|c| [c.lo, c.hi]),
                p_best: if counted > 0 {
                    wins[i] as f64 / counted as f64
                } else {
                    0.0
                },
                measured: mean_at(g, target[0], &[target[1]], &options.by),
            }
        })
        .collect();
    let winner_index = (0..names.len())
        .filter(|&i| variants[i].predicted.is_some())
        .min_by(|&a, &b| {
            variants[a]
                .predicted
                .unwrap_or(f64::INFINITY)
                .total_cmp(&variants[b].predicted.unwrap_or(f64::INFINITY))
        });
    let measured_winner = variants
        .iter()
        .map(|v| v.measured.map(|m| (m, v.name.clone())))
        .collect::<Option<Vec<_>>>()
        .and_then(|m| {
            m.into_iter()
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|x| x.1)
        });
    let (single_scale, law, pairs) = accuracy(&names, &groups, &options.by);
    Some(DecisionReport {
        by: match &options.by {
            DecideBy::Loss => "loss".into(),
            DecideBy::Error(_) => "error".into(),
        },
        metrics: match &options.by {
            DecideBy::Loss => Vec::new(),
            DecideBy::Error(m) => m.clone(),
        },
        target,
        winner: winner_index.map(|i| names[i].to_string()),
        probability: winner_index.map(|i| variants[i].p_best),
        variants,
        measured_winner,
        single_scale,
        law,
        pairs,
        bootstrap_resamples: options.bootstrap,
        confidence: options.confidence,
    })
}

/// Every recipe resampled `options.bootstrap` times and refitted: each recipe's predictions
/// at the target, how often each predicted best, and the resamples where every recipe fitted.
fn bootstrap(
    names: &[&str],
    groups: &BTreeMap<&str, Vec<&Row>>,
    target: [f64; 2],
    options: &VariantsRequest,
    seed: u64,
) -> (Vec<Vec<f64>>, Vec<usize>, usize) {
    let mut draws: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut wins = vec![0usize; names.len()];
    let mut counted = 0usize;
    for r in 0..options.bootstrap {
        let mut rng = SplitMix64::new(hash2(seed, r));
        let predicted: Vec<Option<f64>> = names
            .iter()
            .map(|n| {
                let g = &groups[n];
                let sample: Vec<&Row> = (0..g.len())
                    .map(|_| g[rng.below(g.len() as u64) as usize])
                    .collect();
                fit_law(&sample, &options.by).map(|l| l.at(target[0], target[1]))
            })
            .collect();
        for (d, p) in draws.iter_mut().zip(&predicted) {
            d.extend(p.filter(|v| v.is_finite()));
        }
        if predicted.iter().all(|p| p.is_some_and(f64::is_finite)) {
            let best = (0..names.len())
                .min_by(|&a, &b| {
                    predicted[a]
                        .unwrap_or(f64::INFINITY)
                        .total_cmp(&predicted[b].unwrap_or(f64::INFINITY))
                })
                .unwrap_or(0);
            wins[best] += 1;
            counted += 1;
        }
    }
    (draws, wins, counted)
}

/// Decision accuracy over every pair and cut-off (see the module).
fn accuracy(
    names: &[&str],
    groups: &BTreeMap<&str, Vec<&Row>>,
    by: &DecideBy,
) -> (Accuracy, Accuracy, Vec<PairDecision>) {
    let (mut single, mut law, mut pairs) = (Accuracy::default(), Accuracy::default(), Vec::new());
    for (i, a) in names.iter().enumerate() {
        for b in &names[i + 1..] {
            let (ga, gb) = (&groups[a], &groups[b]);
            let common: Vec<f64> = sizes(ga)
                .into_iter()
                .filter(|&n| sizes(gb).iter().any(|&m| same(n, m)))
                .collect();
            let Some(&largest) = common.last() else {
                continue;
            };
            let top = shared_tokens(ga, gb, largest);
            let (Some(ta), Some(tb)) = (
                mean_at(ga, largest, &top, by),
                mean_at(gb, largest, &top, by),
            ) else {
                continue;
            };
            let truth = ta < tb;
            for &cut in &common[..common.len() - 1] {
                let at = shared_tokens(ga, gb, cut);
                let (Some(sa), Some(sb)) = (mean_at(ga, cut, &at, by), mean_at(gb, cut, &at, by))
                else {
                    continue;
                };
                let small = sa < sb;
                single.add(small == truth);
                let predict = |g: &[&Row]| -> Option<f64> {
                    let upto: Vec<&Row> = g
                        .iter()
                        .copied()
                        .filter(|r| r.params_total <= cut * 1.01)
                        .collect();
                    let l = fit_law(&upto, by)?;
                    let v: Vec<f64> = top.iter().map(|&d| l.at(largest, d)).collect();
                    Some(v.iter().sum::<f64>() / v.len() as f64)
                };
                let by_law = match (predict(ga), predict(gb)) {
                    (Some(pa), Some(pb)) if pa.is_finite() && pb.is_finite() => {
                        law.add((pa < pb) == truth);
                        Some(pa < pb)
                    }
                    _ => None,
                };
                pairs.push(PairDecision {
                    a: a.to_string(),
                    b: b.to_string(),
                    cutoff: cut,
                    largest,
                    a_better: truth,
                    single_scale: small,
                    law: by_law,
                });
            }
        }
    }
    (single, law, pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs of a Chinchilla law on a 5 × 3 grid, labelled `variant`.
    fn runs(variant: &str, e: f64) -> Vec<Row> {
        let law = super::super::chinchilla::Law {
            e,
            a: 400.0,
            b: 1000.0,
            alpha: 0.35,
            beta: 0.3,
        };
        let mut out = Vec::new();
        for n in [1e6, 3e6, 1e7, 3e7, 1e8] {
            for m in [10.0, 20.0, 40.0] {
                let d = m * n;
                out.push(Row {
                    name: format!("{variant}-{n}-{m}"),
                    params_total: n,
                    params_non_embedding: n,
                    tokens: d,
                    unique_tokens: None,
                    loss: law.loss(n, d),
                    flops: 6.0 * n * d,
                    budget: None,
                    wall_seconds: None,
                    peak_rss_bytes: None,
                    threads: None,
                    metrics: Default::default(),
                    variant: Some(variant.into()),
                });
            }
        }
        out
    }

    /// Two recipes whose laws differ only in E: the lower-E one wins everywhere, the laws
    /// say so with certainty, and every decision at every smaller size agrees.
    #[test]
    fn the_better_recipe_wins_and_every_decision_agrees() {
        let mut rows = runs("good", 1.8);
        rows.extend(runs("worse", 1.9));
        let options = VariantsRequest {
            by: DecideBy::Loss,
            target: None,
            bootstrap: 20,
            confidence: 0.9,
        };
        let d = decide(&rows, &options, 3).unwrap();
        assert_eq!(d.winner.as_deref(), Some("good"));
        assert_eq!(d.measured_winner.as_deref(), Some("good"));
        assert_eq!(d.probability, Some(1.0));
        assert_eq!(d.target, [1e8, 4e9]);
        // 1 pair × 4 smaller sizes.
        assert_eq!((d.single_scale.agree, d.single_scale.total), (4, 4));
        // The laws need 5 runs: none fits on the smallest size's 3 alone.
        assert_eq!((d.law.agree, d.law.total), (3, 3));
        assert!(d.pairs[0].law.is_none() && d.pairs[1].law == Some(true));
        let good = &d.variants[0];
        let want = 1.8 + 400.0 / 1e8f64.powf(0.35) + 1000.0 / 4e9f64.powf(0.3);
        assert!(
            (good.predicted.unwrap() / want - 1.0).abs() < 1e-6,
            "{good:?}"
        );
        // One recipe: nothing to decide.
        assert!(decide(&runs("only", 1.8), &options, 3).is_none());
    }
}
