//! Batch size tuned per scale point: the optimal batch laws B*(D) = c·D^b (Li et al. 2025,
//! "Predictable Scale: Part I": B* depends on the data size only) and B*(C) = c·C^b
//! (DeepSeek LLM 2024, §3.1), and the critical batch size from the steps–tokens trade-off
//! (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training").
//!
//! - **B\* per point** is the envelope's ([`super::hyper`]): the batch size of the point's
//!   best run, refined — when it has a swept neighbour on each side — to the vertex of the
//!   parabola in ln B through the best loss at each batch size (each at its own best
//!   learning rate). Batch sizes are counted in tokens per step (sequences × context), as
//!   both papers do.
//! - **Laws.** ln B* = ln c + b·ln x by least squares over the points, x = D (tokens) or C
//!   (training FLOPs), with bootstrap percentile intervals over points.
//! - **Critical batch size.** For one size, each batch size's best loss at each token count
//!   traces how many tokens E it needs to reach a loss L (ln D interpolated linearly in the
//!   loss between adjacent token counts). The trade-off (S/S_min − 1)(E/E_min − 1) = 1 makes
//!   E linear in the batch B (tokens per step): E = E_min + S_min·B, fitted by least squares
//!   over the batch sizes that reach L; B_crit(L) = E_min / S_min, the batch beyond which
//!   doubling it buys less than half the steps back. Each run's loss is its final one, after
//!   its whole schedule — not a point on a longer run's curve — so every E is a fully
//!   trained run's. Loss levels: three, at 10 %, 50 % and 90 % of the span every swept batch
//!   size reaches at that size.

use serde::{Deserialize, Serialize};

use super::bootstrap;
use super::hyper::{EtaLaw, SweepRun, envelope, fit_eta};
use super::linear::line;

/// What the batch analysis needs beyond the runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOptions {
    /// The batch size (sequences) the final run is compared against: its own η* law is
    /// fitted from the runs at that batch alone.
    pub compare: Option<u64>,
}

/// A fitted B*(x) = c·x^b, B* in tokens per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchLaw {
    pub c: f64,
    pub b: f64,
    /// Percentile intervals of ln c and b.
    pub ci: Option<[[f64; 2]; 2]>,
    pub resamples: usize,
    pub points: usize,
    /// Root mean squared error of ln B*.
    pub rmse_log: f64,
}

impl BatchLaw {
    /// B* in tokens per step at `x`.
    pub fn predict(&self, x: f64) -> f64 {
        self.c * x.powf(self.b)
    }
}

/// The critical batch size of one model size at one loss level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticalBatch {
    /// Parameters (in the fits' convention).
    pub n: f64,
    pub loss: f64,
    /// E_min / S_min, tokens per step.
    pub tokens: f64,
    /// Tokens and steps the trade-off needs at the smallest and largest batch.
    pub e_min: f64,
    pub s_min: f64,
    /// The batch sizes (sequences) that reached the level.
    pub batches: Vec<u64>,
    /// B_crit lies past the largest batch size that reached the level: the linear trade-off
    /// is extrapolated to it.
    pub beyond_sweep: bool,
}

/// The comparison batch size's own learning-rate law.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareBatch {
    pub batch: u64,
    pub eta: Option<EtaLaw>,
}

/// A batch sweep as `fits.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchReport {
    /// Every batch size swept (sequences), ascending.
    pub swept: Vec<u64>,
    /// B*(D), D in tokens; B*(C), C in training FLOPs.
    pub law_d: Option<BatchLaw>,
    pub law_c: Option<BatchLaw>,
    /// Why a law is missing, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfitted: Option<String>,
    /// Per size and loss level, where the sweep allows it.
    pub critical: Vec<CriticalBatch>,
    /// Why no critical batch size could be read, when none could.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_missing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<CompareBatch>,
}

/// Fit B* = c·x^b over `(x, B*)` pairs.
pub fn fit_law(
    pairs: &[(f64, f64)],
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Option<BatchLaw> {
    let regress = |idx: &[usize]| -> Option<(f64, f64)> {
        let x: Vec<f64> = idx.iter().map(|&i| pairs[i].0.ln()).collect();
        let y: Vec<f64> = idx.iter().map(|&i| pairs[i].1.ln()).collect();
        line(&x, &y)
    };
    let all: Vec<usize> = (0..pairs.len()).collect();
    let (ln_c, b) = regress(&all)?;
    let rmse_log = (pairs
        .iter()
        .map(|(x, y)| (ln_c + b * x.ln() - y.ln()).powi(2))
        .sum::<f64>()
        / pairs.len() as f64)
        .sqrt();
    let ci = bootstrap::resample_intervals(pairs.len(), resamples, confidence, seed, &|idx| {
        regress(idx).map(|(c, b)| vec![c, b])
    })
    .map(|(iv, _)| [[iv[0].lo, iv[0].hi], [iv[1].lo, iv[1].hi]]);
    Some(BatchLaw {
        c: ln_c.exp(),
        b,
        ci,
        resamples,
        points: pairs.len(),
        rmse_log,
    })
}

/// The batch analysis of a sweep (`None` without more than one batch size).
pub fn report(
    runs: &[SweepRun],
    options: &BatchOptions,
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Option<BatchReport> {
    let mut swept: Vec<u64> = runs.iter().map(|r| r.batch).collect();
    swept.sort_unstable();
    swept.dedup();
    if swept.len() < 2 {
        return None;
    }
    let points = envelope(runs);
    let chosen: Vec<&super::hyper::BatchChoice> =
        points.iter().filter_map(|p| p.batch.as_ref()).collect();
    let by_d: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p.d, p.batch.as_ref()?.opt_tokens)))
        .collect();
    let by_c: Vec<(f64, f64)> = chosen.iter().map(|b| (b.flops, b.opt_tokens)).collect();
    let law_d = fit_law(&by_d, resamples, confidence, seed);
    let law_c = fit_law(&by_c, resamples, confidence, seed ^ 0xc);
    let unfitted = (law_d.is_none() || law_c.is_none()).then(|| {
        "B*(D) and B*(C) need points at 2+ token counts (or budgets) with a finished run".into()
    });
    let (critical, critical_missing) = critical(runs, &swept);
    let compare = options.compare.map(|batch| {
        let at: Vec<SweepRun> = runs.iter().filter(|r| r.batch == batch).cloned().collect();
        let mut lrs: Vec<f64> = at.iter().map(|r| r.lr).collect();
        lrs.sort_by(f64::total_cmp);
        lrs.dedup();
        let eta = (lrs.len() > 1)
            .then(|| fit_eta(&envelope(&at), resamples, confidence, seed))
            .flatten();
        CompareBatch { batch, eta }
    });
    Some(BatchReport {
        swept,
        law_d,
        law_c,
        unfitted,
        critical,
        critical_missing,
        compare,
    })
}

/// Fractions of the loss span every batch size reaches at which B_crit is read.
pub const CRITICAL_LEVELS: [f64; 3] = [0.1, 0.5, 0.9];

/// One size's best loss per (batch, tokens): ascending tokens per batch size.
type Traces = Vec<(u64, f64, Vec<(f64, f64)>)>;

fn traces(runs: &[SweepRun], n: f64, swept: &[u64]) -> Traces {
    let mut out = Vec::new();
    for &b in swept {
        let at: Vec<&SweepRun> = runs
            .iter()
            .filter(|r| r.n == n && r.batch == b && r.loss.is_some_and(f64::is_finite))
            .collect();
        let Some(tokens) = at.first().map(|r| r.batch_tokens) else {
            continue;
        };
        let mut ds: Vec<f64> = at.iter().map(|r| r.d).collect();
        ds.sort_by(f64::total_cmp);
        ds.dedup();
        let trace: Vec<(f64, f64)> = ds
            .iter()
            .map(|&d| {
                let best = at
                    .iter()
                    .filter(|r| r.d == d)
                    .filter_map(|r| r.loss)
                    .fold(f64::INFINITY, f64::min);
                (d, best)
            })
            .collect();
        if trace.len() >= 2 {
            out.push((b, tokens, trace));
        }
    }
    out
}

/// Tokens a trace needs to reach `level`: ln D interpolated between the first pair of
/// adjacent token counts whose losses bracket it.
fn tokens_to(trace: &[(f64, f64)], level: f64) -> Option<f64> {
    trace.windows(2).find_map(|w| {
        let ((d0, l0), (d1, l1)) = (w[0], w[1]);
        if l0 >= level && level >= l1 && l0 > l1 {
            let t = (l0 - level) / (l0 - l1);
            Some((d0.ln() + t * (d1.ln() - d0.ln())).exp())
        } else {
            None
        }
    })
}

/// The critical batch sizes of every size, or why there are none.
fn critical(runs: &[SweepRun], swept: &[u64]) -> (Vec<CriticalBatch>, Option<String>) {
    let mut sizes: Vec<f64> = runs.iter().map(|r| r.n).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    let mut out = Vec::new();
    for n in sizes {
        let traces = traces(runs, n, swept);
        if traces.len() < 2 {
            continue;
        }
        // The span every batch size's trace covers.
        let hi = traces
            .iter()
            .map(|(_, _, t)| t.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max))
            .fold(f64::INFINITY, f64::min);
        let lo = traces
            .iter()
            .map(|(_, _, t)| t.iter().map(|p| p.1).fold(f64::INFINITY, f64::min))
            .fold(f64::NEG_INFINITY, f64::max);
        if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        for f in CRITICAL_LEVELS {
            let level = hi - f * (hi - lo);
            let reached: Vec<(u64, f64, f64)> = traces
                .iter()
                .filter_map(|(b, tokens, t)| Some((*b, *tokens, tokens_to(t, level)?)))
                .collect();
            if reached.len() < 2 {
                continue;
            }
            let x: Vec<f64> = reached.iter().map(|r| r.1).collect();
            let e: Vec<f64> = reached.iter().map(|r| r.2).collect();
            let Some((e_min, s_min)) = line(&x, &e) else {
                continue;
            };
            if e_min > 0.0 && s_min > 0.0 {
                let largest = x.iter().copied().fold(0.0, f64::max);
                out.push(CriticalBatch {
                    n,
                    loss: level,
                    tokens: e_min / s_min,
                    e_min,
                    s_min,
                    batches: reached.iter().map(|r| r.0).collect(),
                    beyond_sweep: e_min / s_min > largest,
                });
            }
        }
    }
    let missing = out.is_empty().then(|| {
        "no size has 2+ batch sizes whose best losses over 2+ token counts share a span in \
         which the tokens needed grow with the batch (E = E_min + S_min·B with both positive)"
            .to_string()
    });
    (out, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Step Law's B*(D) = 0.58·D^0.571 (tokens) as the optimum of a loss that pays
    /// k·ln²(B/B*) for missing it, with an lr optimum of its own.
    fn law_loss(n: f64, d: f64, lr: f64, b_tokens: f64) -> f64 {
        let b_opt = 0.58 * d.powf(0.571);
        let lr_opt = 0.5 * n.powf(-0.3) * d.powf(0.1);
        (2.0 + 50.0 / n.powf(0.3) + 200.0 / d.powf(0.3))
            * (1.0 + 0.02 * (b_tokens / b_opt).ln().powi(2))
            * (1.0 + 0.05 * (lr / lr_opt).ln().powi(2))
    }

    fn sweep() -> Vec<SweepRun> {
        let context = 64.0;
        let mut out = Vec::new();
        for n in [1e5, 4e5, 1.6e6, 6.4e6] {
            for d in [1e7, 4e7, 1.6e8] {
                for i in 0..9 {
                    let lr = 1e-3 * 2f64.powi(i);
                    for j in 0..12 {
                        let batch = 1u64 << j;
                        let tokens = batch as f64 * context;
                        out.push(SweepRun {
                            name: format!("n{n:e}-d{d:e}-lr{lr:e}-b{batch}"),
                            point: format!("n{n:e}-d{d:e}"),
                            n,
                            d,
                            lr,
                            batch,
                            batch_tokens: tokens,
                            flops: 6.0 * n * d,
                            loss: Some(law_loss(n, d, lr, tokens)),
                        });
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_batch_law_recovers_step_laws_exponent() {
        let r = report(&sweep(), &BatchOptions { compare: Some(8) }, 200, 0.95, 1).unwrap();
        assert_eq!(r.swept.len(), 12);
        let law = r.law_d.unwrap();
        // The parabola in ln B is exact, so the refined optima are the true ones.
        assert!((law.b - 0.571).abs() < 1e-6, "{law:?}");
        assert!((law.c / 0.58 - 1.0).abs() < 1e-5, "{law:?}");
        let ci = law.ci.unwrap();
        assert!(
            ci[1][0] <= 0.571 + 1e-9 && 0.571 - 1e-9 <= ci[1][1],
            "{ci:?}"
        );
        // B*(C) mixes sizes at one D: the fit still sees B* rise with compute.
        assert!(r.law_c.unwrap().b > 0.0);
        // The comparison batch's own η* law finds the lr law (the loss factors separate).
        let eta = r.compare.unwrap().eta.unwrap();
        assert!(
            (eta.a + 0.3).abs() < 1e-6 && (eta.b - 0.1).abs() < 1e-6,
            "{eta:?}"
        );
    }

    /// A sweep that trades steps for tokens as McCandlish et al. model it: the critical
    /// batch size read back is the one the runs were made from.
    #[test]
    fn the_critical_batch_size_is_read_from_the_trade_off() {
        // Tokens to reach loss L at batch B (tokens per step): E = E_min(L)·(1 + B/4096),
        // i.e. E_min + S_min·B with S_min = E_min/4096, so B_crit = 4096 at every level;
        // with E_min(L) = 1e4/(L − 1), a run of D tokens ends at L = 1 + 1e4·(1 + B/4096)/D.
        let mut runs = Vec::new();
        for batch in [8u64, 16, 32, 64, 128] {
            let tokens = batch as f64 * 64.0;
            for d in [1e5, 2e5, 4e5, 8e5] {
                runs.push(SweepRun {
                    name: format!("d{d:e}-b{batch}"),
                    point: format!("d{d:e}"),
                    n: 1e5,
                    d,
                    lr: 1e-3,
                    batch,
                    batch_tokens: tokens,
                    flops: 6e5 * d,
                    loss: Some(1.0 + 1e4 * (1.0 + tokens / 4096.0) / d),
                });
            }
        }
        let (found, missing) = critical(&runs, &[8, 16, 32, 64, 128]);
        assert!(missing.is_none());
        assert_eq!(found.len(), 3);
        for c in &found {
            // Interpolating ln D between token counts bends the exact 1/D a little.
            assert!((c.tokens / 4096.0 - 1.0).abs() < 0.1, "{c:?}");
            assert_eq!(c.batches.len(), 5);
            // 4096 tokens lies inside the swept 128–8192.
            assert!(!c.beyond_sweep);
        }
        // One batch size: no trade-off to read.
        let one: Vec<SweepRun> = runs.iter().filter(|r| r.batch == 8).cloned().collect();
        let (none, why) = critical(&one, &[8]);
        assert!(none.is_empty() && why.is_some());
    }

    #[test]
    fn ties_and_edges_of_the_batch_sweep() {
        // The largest batch wins at every point: flagged at the edge.
        let runs: Vec<SweepRun> = [4u64, 8, 16]
            .iter()
            .map(|&batch| SweepRun {
                name: format!("p-b{batch}"),
                point: "p".into(),
                n: 1e5,
                d: 1e7,
                lr: 1e-3,
                batch,
                batch_tokens: batch as f64 * 64.0,
                flops: 6e12,
                loss: Some(3.0 - batch as f64 * 1e-3),
            })
            .collect();
        let env = envelope(&runs);
        let b = env[0].batch.as_ref().unwrap();
        assert_eq!(b.batch, 16);
        assert!(b.at_edge);
        assert_eq!(b.opt_tokens, 16.0 * 64.0);
        // A single batch size is no batch sweep.
        assert!(report(&runs[..1], &BatchOptions::default(), 10, 0.95, 1).is_none());
    }
}
