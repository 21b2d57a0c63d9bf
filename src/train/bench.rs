//! Training-throughput measurement for `scalebook bench train`: the trainer's own
//! [`Stepper`] on random tokens, warm-up excluded, so it compares one to one with
//! `../shared/bench/gpt_torch.py` (same model, batch, context, backward and AdamW step).

use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::Serialize;

use super::step::Stepper;
use crate::model::cpu::profile;
use crate::model::{GptConfig, param_counts};
use crate::rng::SplitMix64;
use crate::study::{Schedule, TrainSpec};

/// What to measure.
#[derive(Debug, Clone, Copy)]
pub struct BenchConfig {
    pub model: GptConfig,
    pub batch: usize,
    pub warmup_steps: usize,
    pub steps: usize,
    pub threads: usize,
    /// FLOP/s used for MFU; measured with a large matmul when `None`.
    pub peak_gflops: Option<f64>,
}

/// The measurement.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub layers: u64,
    pub d_model: u64,
    pub heads: u64,
    pub context: u64,
    pub batch: usize,
    pub threads: usize,
    pub params: u64,
    pub params_non_embedding: u64,
    pub steps: usize,
    /// batch × context × steps / Σ step time (PyTorch script's `tok_per_s`).
    pub tokens_per_second: f64,
    pub step_ms_median: f64,
    pub step_ms_mean: f64,
    /// (6·N_non_embedding + 12·L·T·d) · tokens/s ÷ peak (nanoGPT's estimate after PaLM,
    /// Appendix B; the formula of ../shared/bench/README.md).
    pub mfu: f64,
    pub peak_gflops: f64,
    /// Whether `peak_gflops` was measured here (a 2048³ f32 matmul, best of 5).
    pub peak_measured: bool,
    pub peak_rss_bytes: Option<u64>,
    pub loss_first: f64,
    pub loss_last: f64,
    /// Time per step by kind of work, with `SCALEBOOK_PROFILE` set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Vec<ProfileLine>>,
}

/// One kind of work's share of the timed steps.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileLine {
    pub section: &'static str,
    pub ms_per_step: f64,
    /// Of the mean step time.
    pub share: f64,
}

/// Best f32 matmul throughput of this machine through candle, in GFLOP/s.
pub fn measure_peak_gflops() -> candle_core::Result<f64> {
    let n = 2048;
    let device = Device::Cpu;
    let a = Tensor::ones((n, n), candle_core::DType::F32, &device)?;
    let b = Tensor::ones((n, n), candle_core::DType::F32, &device)?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        let c = a.matmul(&b)?;
        // Touch the result so the product is not skipped.
        let _ = c.get(0)?.get(0)?.to_scalar::<f32>()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(2.0 * (n as f64).powi(3) / best / 1e9)
}

/// Time `warmup_steps + steps` training steps; report the timed ones.
pub fn bench_train(config: &BenchConfig) -> candle_core::Result<BenchReport> {
    let m = config.model;
    let (b, t, v) = (config.batch, m.context as usize, m.vocab);
    // AdamW(lr 3e-4, wd 0.1) as the reference script; clipping on, as in every study.
    let train = TrainSpec {
        batch: b as u64,
        lr: 3e-4,
        schedule: Schedule::Constant,
        warmup: 0.0,
        weight_decay: 0.1,
        beta1: 0.9,
        beta2: 0.95,
        grad_clip: 1.0,
        eval_every: 1,
        eval_tokens: t as u64,
    };
    let mut stepper = Stepper::new(&m, &train, 0)?;
    // 16 pre-drawn random batches, reused in turn (the reference keeps 64 in memory).
    let mut rng = SplitMix64::new(1);
    let batches: Vec<(Vec<u32>, Vec<u32>)> = (0..16)
        .map(|_| {
            let x: Vec<u32> = (0..b * t).map(|_| rng.below(v) as u32).collect();
            let y: Vec<u32> = (0..b * t).map(|_| rng.below(v) as u32).collect();
            (x, y)
        })
        .collect();
    let mut times = Vec::with_capacity(config.steps);
    let mut losses = Vec::with_capacity(config.steps);
    for i in 0..config.warmup_steps + config.steps {
        if i == config.warmup_steps {
            profile::reset();
        }
        let (x, y) = &batches[i % batches.len()];
        let start = Instant::now();
        let loss = stepper.step(x, y, b, train.lr)?;
        let elapsed = start.elapsed().as_secs_f64();
        if i >= config.warmup_steps {
            times.push(elapsed);
            losses.push(loss);
        }
    }
    let total: f64 = times.iter().sum();
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let tokens_per_second = (b * t * times.len()) as f64 / total;
    let counts = param_counts(&m);
    let (peak_gflops, peak_measured) = match config.peak_gflops {
        Some(p) => (p, false),
        None => (measure_peak_gflops()?, true),
    };
    let flops_per_token =
        6.0 * counts.non_embedding as f64 + 12.0 * (m.layers * m.context * m.d_model) as f64;
    Ok(BenchReport {
        layers: m.layers,
        d_model: m.d_model,
        heads: m.heads,
        context: m.context,
        batch: b,
        threads: config.threads,
        params: counts.total,
        params_non_embedding: counts.non_embedding,
        steps: times.len(),
        tokens_per_second,
        step_ms_median: median * 1e3,
        step_ms_mean: total / times.len() as f64 * 1e3,
        mfu: flops_per_token * tokens_per_second / (peak_gflops * 1e9),
        peak_gflops,
        peak_measured,
        peak_rss_bytes: crate::sys::peak_rss_bytes(),
        loss_first: losses.first().copied().unwrap_or(f64::NAN),
        loss_last: losses.last().copied().unwrap_or(f64::NAN),
        profile: profile::totals().map(|lines| {
            lines
                .into_iter()
                .map(|(section, seconds)| ProfileLine {
                    section,
                    ms_per_step: seconds / times.len() as f64 * 1e3,
                    share: seconds / total,
                })
                .collect()
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_consistent_numbers_for_a_tiny_model() {
        let report = bench_train(&BenchConfig {
            model: GptConfig {
                layers: 1,
                d_model: 32,
                heads: 2,
                context: 16,
                vocab: 256,
                tie_embeddings: false,
                parametrization: Default::default(),
            },
            batch: 4,
            warmup_steps: 1,
            steps: 3,
            threads: 1,
            peak_gflops: Some(100.0),
        })
        .unwrap();
        assert_eq!(report.steps, 3);
        assert!(report.tokens_per_second > 0.0);
        assert!(report.step_ms_median > 0.0);
        // MFU is the stated formula.
        let fpt = 6.0 * report.params_non_embedding as f64 + 12.0 * 16.0 * 32.0;
        assert!((report.mfu - fpt * report.tokens_per_second / 100e9).abs() < 1e-12);
        // Random tokens: the loss starts near ln 256.
        assert!(
            (report.loss_first - 256f64.ln()).abs() < 0.2,
            "{}",
            report.loss_first
        );
    }
}
