//! Learning rate tuned per scale point: the lower envelope over a learning-rate sweep, and
//! the optimal-learning-rate law η*(N, D) = c·N^a·D^b (DeepSeek LLM 2024, §3.1; Li et al.
//! 2025, "Predictable Scale: Part I — Optimal Hyperparameter Scaling Law").
//!
//! - **Envelope.** Each (size, tokens) point was trained at several learning rates (and, in
//!   a batch sweep, at every pair of learning rate and batch size: [`super::batch`]); the
//!   point's loss is the lowest among its runs that finished. Ties go to the lower learning
//!   rate (the safer choice), then the smaller batch. Runs that diverged or failed are excluded and named; a point
//!   whose every run failed has no loss (and its runs are left out of the fits).
//! - **η\* per point.** The best swept value, refined — when it has a swept neighbour on each
//!   side — to the vertex of the parabola through the three losses in ln η (the usual shape
//!   of loss against ln lr near its minimum), kept between those neighbours. A best value at
//!   either end of the sweep is flagged: the optimum may lie outside it.
//! - **Law.** ln η* = ln c + a·ln N + b·ln D by least squares over the points (η*(N) alone
//!   when the points share one token count, η*(D) when they share one size), with
//!   bootstrap percentile intervals over points.

use serde::{Deserialize, Serialize};

use super::bootstrap;
use super::linear::{line, parabola, plane};

/// One run of a sweep as the envelope sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRun {
    pub name: String,
    /// The (size, tokens) point it belongs to (its name without the lr suffix).
    pub point: String,
    /// Parameters (in the fits' convention) and tokens.
    pub n: f64,
    pub d: f64,
    pub lr: f64,
    /// Batch size: sequences, and tokens per step (sequences × context).
    pub batch: u64,
    pub batch_tokens: f64,
    /// Training FLOPs (the same for every run of a point).
    pub flops: f64,
    /// Final validation loss; `None` when the run diverged or failed.
    pub loss: Option<f64>,
}

/// What the envelope chose for one point's batch size (a batch sweep only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchChoice {
    /// The best run's batch size in sequences, and in tokens per step.
    pub batch: u64,
    pub tokens: f64,
    /// B* in tokens per step, refined like η* over the best loss at each batch size.
    pub opt_tokens: f64,
    /// Batch sizes tried at this point, ascending.
    pub tried: Vec<u64>,
    /// The best batch size is the smallest or largest finished one.
    pub at_edge: bool,
    /// The point's training FLOPs.
    pub flops: f64,
}

/// What the envelope chose for one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointChoice {
    pub point: String,
    /// The run whose loss the fits use.
    pub run: String,
    pub n: f64,
    pub d: f64,
    /// The best swept learning rate and its loss.
    pub lr: f64,
    pub loss: f64,
    /// η* refined between the best value's neighbours (equal to `lr` at an edge).
    pub lr_opt: f64,
    /// Learning rates tried at this point (finished or not), ascending.
    pub tried: Vec<f64>,
    /// Runs of this point that diverged or failed.
    pub failed: Vec<String>,
    /// The best value is the smallest or largest finished one of the sweep.
    pub at_edge: bool,
    /// The batch size of the best run (a batch sweep only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchChoice>,
}

/// The fitted η*(N, D) = c·N^a·D^b.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EtaLaw {
    pub c: f64,
    /// Exponent on N (0 when the points share one size).
    pub a: f64,
    /// Exponent on D (0 when the points share one token count).
    pub b: f64,
    /// Percentile intervals of ln c, a and b.
    pub ci: Option<[[f64; 2]; 3]>,
    pub resamples: usize,
    pub points: usize,
    /// Root mean squared error of ln η*.
    pub rmse_log: f64,
}

impl EtaLaw {
    pub fn predict(&self, n: f64, d: f64) -> f64 {
        self.c * n.powf(self.a) * d.powf(self.b)
    }
}

/// The sweep, the choices and the law, as `fits.json` holds them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HyperReport {
    /// Every learning rate swept, ascending.
    pub swept: Vec<f64>,
    pub points: Vec<PointChoice>,
    pub eta: Option<EtaLaw>,
    /// Learning-rate transfer: the sizes swept, and the learning rate every other size took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferReport>,
    /// A batch sweep: its sizes, the B* laws, the critical batch sizes and the comparison
    /// batch's own η* law.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<super::batch::BatchReport>,
}

/// A transferred size's loss more than this fraction above the best of its own sweep (a
/// `check` size) says the transfer missed the optimum.
pub const TRANSFER_MARGIN: f64 = 0.01;

/// Learning-rate transfer (`train.lr_transfer`) as the fits report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferReport {
    /// `mup` or `law`.
    pub rule: String,
    /// The sizes swept at every learning rate (display names).
    pub swept_sizes: Vec<String>,
    /// The smallest and largest learning rate swept.
    pub swept_range: [f64; 2],
    pub points: Vec<TransferPoint>,
    /// [`TRANSFER_MARGIN`].
    pub margin: f64,
}

/// One transferred (size, tokens) point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferPoint {
    pub point: String,
    pub size: String,
    /// Parameters (in the fits' convention) and tokens.
    pub n: f64,
    pub d: f64,
    /// The learning rate it trained at (two significant figures) and before rounding.
    pub lr: f64,
    pub lr_exact: f64,
    /// With a batch sweep, the batch size it trained at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
    /// Its final loss (`None`: not finished, diverged or failed).
    pub loss: Option<f64>,
    /// Outside the swept range: an extrapolation of the sweep.
    pub outside_sweep: bool,
    /// A `check` size: the best of its own sweep at these tokens (lr, loss) and how far the
    /// transferred run's loss lies above it (relative; negative: below).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<TransferCheck>,
}

/// A transferred point that was also swept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferCheck {
    pub best_lr: f64,
    pub best_loss: f64,
    pub excess: f64,
}

/// The lower envelope of `runs` per point, in first-seen point order.
pub fn envelope(runs: &[SweepRun]) -> Vec<PointChoice> {
    let mut order: Vec<&str> = Vec::new();
    for r in runs {
        if !order.contains(&r.point.as_str()) {
            order.push(&r.point);
        }
    }
    order
        .into_iter()
        .filter_map(|p| choose(runs.iter().filter(|r| r.point == p).collect()))
        .collect()
}

fn choose(mut runs: Vec<&SweepRun>) -> Option<PointChoice> {
    runs.sort_by(|a, b| a.lr.total_cmp(&b.lr).then(a.batch.cmp(&b.batch)));
    let mut tried: Vec<f64> = runs.iter().map(|r| r.lr).collect();
    tried.dedup();
    let failed: Vec<String> = runs
        .iter()
        .filter(|r| r.loss.is_none_or(|l| !l.is_finite()))
        .map(|r| r.name.clone())
        .collect();
    let ok: Vec<(&SweepRun, f64)> = runs
        .iter()
        .filter_map(|r| r.loss.filter(|l| l.is_finite()).map(|l| (*r, l)))
        .collect();
    // Lowest loss; ties to the lower lr, then the smaller batch (the list is sorted so, and
    // min_by keeps the first).
    let &(best, loss) = ok.iter().min_by(|a, b| a.1.total_cmp(&b.1))?;
    // η* along the learning rates at the best batch size.
    let slice: Vec<(f64, f64)> = ok
        .iter()
        .filter(|(r, _)| r.batch == best.batch)
        .map(|(r, l)| (r.lr, *l))
        .collect();
    let (at_edge, lr_opt) = optimum(&slice, best.lr);
    let batches: Vec<u64> = {
        let mut b: Vec<u64> = runs.iter().map(|r| r.batch).collect();
        b.sort_unstable();
        b.dedup();
        b
    };
    let batch = (batches.len() > 1).then(|| {
        // B* over the best loss at each batch size (its learning rate tuned for it).
        let mut profile: Vec<(f64, f64)> = Vec::new();
        for &b in &batches {
            let at_b = ok.iter().filter(|(r, _)| r.batch == b);
            if let Some((r, l)) = at_b.min_by(|x, y| x.1.total_cmp(&y.1)) {
                profile.push((r.batch_tokens, *l));
            }
        }
        let (edge, opt) = optimum(&profile, best.batch_tokens);
        BatchChoice {
            batch: best.batch,
            tokens: best.batch_tokens,
            opt_tokens: opt,
            tried: batches.clone(),
            at_edge: edge,
            flops: best.flops,
        }
    });
    Some(PointChoice {
        point: best.point.clone(),
        run: best.name.clone(),
        n: best.n,
        d: best.d,
        lr: best.lr,
        loss,
        lr_opt,
        tried,
        failed,
        at_edge,
        batch,
    })
}

/// Over (value, loss) pairs ascending in value, whether the best value `best` is at an end
/// (with more than one value), and the optimum: `best` refined to the vertex of the parabola
/// in ln value through it and its two neighbours when it has both.
fn optimum(values: &[(f64, f64)], best: f64) -> (bool, f64) {
    let Some(i) = values.iter().position(|(v, _)| *v == best) else {
        return (false, best);
    };
    let at_edge = values.len() > 1 && (i == 0 || i == values.len() - 1);
    let refined = if i > 0 && i + 1 < values.len() {
        refine(&values[i - 1..=i + 1]).unwrap_or(best)
    } else {
        best
    };
    (at_edge, refined)
}

/// The vertex of the parabola through three (ln value, loss) points, kept between the outer
/// two.
fn refine(three: &[(f64, f64)]) -> Option<f64> {
    let x: Vec<f64> = three.iter().map(|(v, _)| v.ln()).collect();
    let y: Vec<f64> = three.iter().map(|(_, l)| *l).collect();
    let [_, b, c] = parabola(&x, &y)?;
    (c > 0.0).then(|| (-b / (2.0 * c)).clamp(x[0], x[2]).exp())
}

fn distinct(v: impl Iterator<Item = f64>) -> usize {
    let mut bits: Vec<u64> = v.map(f64::to_bits).collect();
    bits.sort_unstable();
    bits.dedup();
    bits.len()
}

/// (ln c, a, b) of ln η* over `points`, or `None` when they cannot determine it.
fn regress(points: &[&PointChoice]) -> Option<[f64; 3]> {
    let ln_n: Vec<f64> = points.iter().map(|p| p.n.ln()).collect();
    let ln_d: Vec<f64> = points.iter().map(|p| p.d.ln()).collect();
    let ln_lr: Vec<f64> = points.iter().map(|p| p.lr_opt.ln()).collect();
    let sizes = distinct(points.iter().map(|p| p.n));
    let tokens = distinct(points.iter().map(|p| p.d));
    match (sizes > 1, tokens > 1) {
        (true, true) if points.len() >= 4 => plane(&ln_n, &ln_d, &ln_lr),
        (true, false) => line(&ln_n, &ln_lr).map(|(c, a)| [c, a, 0.0]),
        (false, true) => line(&ln_d, &ln_lr).map(|(c, b)| [c, 0.0, b]),
        _ => None,
    }
}

/// Fit η*(N, D) over the points' refined optima, with `resamples` bootstrap refits.
pub fn fit_eta(
    points: &[PointChoice],
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Option<EtaLaw> {
    let all: Vec<&PointChoice> = points.iter().collect();
    let [ln_c, a, b] = regress(&all)?;
    let rmse_log = (points
        .iter()
        .map(|p| (ln_c + a * p.n.ln() + b * p.d.ln() - p.lr_opt.ln()).powi(2))
        .sum::<f64>()
        / points.len() as f64)
        .sqrt();
    let ci = bootstrap::resample_intervals(points.len(), resamples, confidence, seed, &|idx| {
        let sample: Vec<&PointChoice> = idx.iter().map(|&i| &points[i]).collect();
        regress(&sample).map(|v| v.to_vec())
    })
    .map(|(iv, _)| [iv[0], iv[1], iv[2]].map(|i| [i.lo, i.hi]));
    Some(EtaLaw {
        c: ln_c.exp(),
        a,
        b,
        ci,
        resamples,
        points: points.len(),
        rmse_log,
    })
}

/// The envelope and the laws for a sweep of `runs` (`None` when nothing was swept); `batch`
/// holds the batch sweep's options.
pub fn report(
    runs: &[SweepRun],
    batch: &super::batch::BatchOptions,
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Option<HyperReport> {
    let mut swept: Vec<f64> = runs.iter().map(|r| r.lr).collect();
    swept.sort_by(f64::total_cmp);
    swept.dedup();
    let batch = super::batch::report(runs, batch, resamples, confidence, seed);
    if swept.len() < 2 && batch.is_none() {
        return None;
    }
    let points = envelope(runs);
    // η*(N, D) needs a learning-rate sweep.
    let eta = (swept.len() > 1)
        .then(|| fit_eta(&points, resamples, confidence, seed))
        .flatten();
    Some(HyperReport {
        swept,
        points,
        eta,
        transfer: None,
        batch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loss at a point: a parabola in ln lr around η*(N, D) = 0.5·N^−0.3·D^0.1.
    fn law_loss(n: f64, d: f64, lr: f64) -> f64 {
        let opt = 0.5 * n.powf(-0.3) * d.powf(0.1);
        3.0 + 1e3 / n.sqrt() + 0.05 * (lr / opt).ln().powi(2)
    }

    fn sweep(lrs: &[f64]) -> Vec<SweepRun> {
        let mut out = Vec::new();
        for n in [1e5, 4e5, 1.6e6, 6.4e6] {
            for d in [1e7, 4e7, 1.6e8] {
                for &lr in lrs {
                    out.push(SweepRun {
                        name: format!("n{n:e}-d{d:e}-lr{lr:e}"),
                        point: format!("n{n:e}-d{d:e}"),
                        n,
                        d,
                        lr,
                        batch: 8,
                        batch_tokens: 512.0,
                        flops: 6.0 * n * d,
                        loss: Some(law_loss(n, d, lr)),
                    });
                }
            }
        }
        out
    }

    fn lrs() -> Vec<f64> {
        (0..9).map(|i| 1e-3 * 2f64.powi(i)).collect()
    }

    #[test]
    fn the_law_recovers_the_optimum_it_came_from() {
        let r = report(&sweep(&lrs()), &Default::default(), 200, 0.95, 1).unwrap();
        assert_eq!(r.points.len(), 12);
        let eta = r.eta.unwrap();
        // The parabola in ln lr is exact, so the refined optima are the true ones.
        assert!((eta.a + 0.3).abs() < 1e-6, "{eta:?}");
        assert!((eta.b - 0.1).abs() < 1e-6, "{eta:?}");
        assert!((eta.c - 0.5).abs() < 1e-5, "{eta:?}");
        let ci = eta.ci.unwrap();
        assert!(ci[1][0] <= -0.3 + 1e-9 && -0.3 - 1e-9 <= ci[1][1], "{ci:?}");
        assert!(r.points.iter().all(|p| !p.at_edge));
    }

    /// A failed run at one lr leaves the point to the others and is named; a point whose
    /// every run failed has no choice; the best value at the end of the sweep is flagged.
    #[test]
    fn failed_runs_and_edges() {
        let mut runs = sweep(&lrs());
        runs[3].loss = None;
        let first = runs[3].point.clone();
        for r in runs
            .iter_mut()
            .filter(|r| r.point.contains("n6.4e6-d1.6e8"))
        {
            r.loss = None;
        }
        let env = envelope(&runs);
        assert_eq!(env.len(), 11);
        let p = env.iter().find(|p| p.point == first).unwrap();
        assert_eq!(p.failed, vec![runs[3].name.clone()]);
        assert_eq!(p.tried.len(), 9);

        // Only the three smallest lrs: the largest models' optimum lies below them... and
        // the small models' above them.
        let few = sweep(&lrs()[..3]);
        let env = envelope(&few);
        assert!(env.iter().any(|p| p.at_edge));
    }

    #[test]
    fn ties_go_to_the_lower_learning_rate() {
        let runs: Vec<SweepRun> = [2e-3, 1e-3, 4e-3]
            .iter()
            .map(|&lr| SweepRun {
                name: format!("p-lr{lr}"),
                point: "p".into(),
                n: 1e5,
                d: 1e7,
                lr,
                batch: 8,
                batch_tokens: 512.0,
                flops: 6e12,
                loss: Some(if lr == 4e-3 { 3.5 } else { 3.2 }),
            })
            .collect();
        let env = envelope(&runs);
        assert_eq!(env[0].lr, 1e-3);
        assert_eq!(env[0].run, "p-lr0.001");
    }

    #[test]
    fn one_learning_rate_is_no_sweep() {
        assert_eq!(
            report(&sweep(&[1e-3]), &Default::default(), 10, 0.95, 1),
            None
        );
    }
}
