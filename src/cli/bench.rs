//! `scalebook bench train …`: training throughput of the trainer on one model shape, for
//! side-by-side comparison with `python3 ../shared/bench/gpt_torch.py`.

use std::path::PathBuf;

use super::{Failure, Format, exit};
use crate::model::GptConfig;
use crate::sys::peak_rss_bytes;
use crate::train::bench::{BenchConfig, bench_train};

#[derive(Debug, clap::Subcommand)]
pub enum Which {
    /// Tokens/s, step time, MFU and peak memory of training one model shape.
    Train(TrainArgs),
    /// A whole study's wall time end to end, against the same grid trained by a PyTorch
    /// trainer (one process per run, the same jobs × threads).
    Study(super::bench_study::StudyArgs),
    /// Time the Chinchilla approach-3 grid fit and warm bootstrap on a results table
    /// (defaults match Epoch's svg_extracted_data.csv).
    Fit(FitArgs),
}

#[derive(Debug, clap::Args)]
pub struct FitArgs {
    /// CSV or Parquet results table.
    #[arg(long)]
    pub csv: PathBuf,
    #[arg(long, default_value = "Model Size")]
    pub params: String,
    /// Column of training FLOPs (D = C / 6N).
    #[arg(long, default_value = "Training FLOP")]
    pub flops: String,
    #[arg(long, default_value = "loss")]
    pub loss: String,
    #[arg(long, default_value_t = 5)]
    pub drop_highest_loss: u64,
    /// Bootstrap refits to time (warm-started unless --bootstrap-grid).
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Where bootstrap refits start: `warm` (the full-data optimum), `grid` (every start of
    /// the 4,500-start grid per resample) or `pruned` (the grid pruned to its 64 best starts
    /// after 10 iterations).
    #[arg(long, default_value = "warm", value_parser = ["warm", "grid", "pruned"])]
    pub bootstrap_starts: String,
    #[arg(long, default_value_t = crate::sys::default_threads().min(2), value_parser = super::parse_threads)]
    pub threads: usize,
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    #[arg(long)]
    pub layers: u64,
    #[arg(long)]
    pub d_model: u64,
    #[arg(long)]
    pub heads: u64,
    #[arg(long, default_value_t = 256)]
    pub context: u64,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, default_value_t = 256)]
    pub vocab: u64,
    /// Timed steps (after the warm-up steps).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Threads (default 2, as the reference benchmark).
    #[arg(long, default_value_t = crate::sys::default_threads().min(2), value_parser = super::parse_threads)]
    pub threads: usize,
    /// Peak FLOP/s for MFU, in GFLOP/s (default: measured with a 2048³ matmul).
    #[arg(long)]
    pub peak_gflops: Option<f64>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

impl TrainArgs {
    /// The benchmarked model (untied, as the reference benchmark).
    fn model(&self) -> GptConfig {
        GptConfig {
            layers: self.layers,
            d_model: self.d_model,
            heads: self.heads,
            context: self.context,
            vocab: self.vocab,
            tie_embeddings: false,
            parametrization: Default::default(),
        }
    }
}

pub fn run(which: &Which) -> Result<(), Failure> {
    let args = match which {
        Which::Train(args) => args,
        Which::Fit(args) => return run_fit(args),
        Which::Study(args) => return super::bench_study::run(args),
    };
    check_train_args(args)?;
    let config = BenchConfig {
        model: args.model(),
        batch: args.batch,
        warmup_steps: args.warmup,
        steps: args.steps,
        threads: args.threads,
        peak_gflops: args.peak_gflops,
    };
    let report = bench_train(&config)
        .map_err(|e| Failure::new(exit::INTERNAL, format!("bench train: {e}")))?;
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string(&report).expect("report is plain data")
        ),
        Format::Table => {
            println!(
                "model {}/{}/{} context {} batch {} threads {}: {} params ({} non-embedding)",
                report.layers,
                report.d_model,
                report.heads,
                report.context,
                report.batch,
                report.threads,
                report.params,
                report.params_non_embedding
            );
            println!(
                "{:.0} tokens/s, median step {:.1} ms, MFU {:.1} % of {:.0} GFLOP/s{}, peak RSS {} MiB",
                report.tokens_per_second,
                report.step_ms_median,
                report.mfu * 100.0,
                report.peak_gflops,
                if report.peak_measured {
                    " (measured)"
                } else {
                    ""
                },
                peak_rss_bytes().unwrap_or(0) >> 20
            );
            for line in report.profile.iter().flatten() {
                println!(
                    "  {:>8.1} ms/step {:>5.1} %  {}",
                    line.ms_per_step,
                    line.share * 100.0,
                    line.section
                );
            }
        }
    }
    Ok(())
}

/// Every shape and count in range, and the model's training memory within what the machine
/// has free: one line naming the option otherwise.
fn check_train_args(args: &TrainArgs) -> Result<(), Failure> {
    let usage = |m: String| Failure::new(exit::USAGE, format!("bench train: {m}"));
    let counts: [(&str, u64, u64); 7] = [
        ("--layers", args.layers, 1 << 10),
        ("--d-model", args.d_model, 1 << 16),
        ("--heads", args.heads, 1 << 10),
        ("--context", args.context, 1 << 16),
        ("--batch", args.batch as u64, 1 << 16),
        ("--steps", args.steps as u64, 1 << 20),
        ("--vocab", args.vocab, 1 << 24),
    ];
    for (flag, value, max) in counts {
        if !(1..=max).contains(&value) {
            return Err(usage(format!(
                "{flag} must be from 1 to {max}, not {value}"
            )));
        }
    }
    if args.warmup > 1 << 20 {
        return Err(usage(format!(
            "--warmup must be at most {}, not {}",
            1 << 20,
            args.warmup
        )));
    }
    if args.vocab < 2 {
        return Err(usage("--vocab must be at least 2".into()));
    }
    if !args.d_model.is_multiple_of(args.heads) {
        return Err(usage(format!(
            "--d-model {} is not divisible by --heads {}",
            args.d_model, args.heads
        )));
    }
    if args
        .peak_gflops
        .is_some_and(|g| !(g.is_finite() && g > 0.0))
    {
        return Err(usage("--peak-gflops must be a positive number".into()));
    }
    let cfg = args.model();
    let need = crate::model::accounting::training_bytes(&cfg, args.batch as u64);
    if let Some(free) = crate::sys::available_memory_bytes()
        && need > free as f64
    {
        return Err(usage(format!(
            "this shape needs about {:.1} GiB to train, but {:.1} GiB of memory is free",
            need / (1u64 << 30) as f64,
            free as f64 / (1u64 << 30) as f64
        )));
    }
    Ok(())
}

fn run_fit(args: &FitArgs) -> Result<(), Failure> {
    use std::time::Instant;

    use crate::fit::bootstrap;
    use crate::fit::chinchilla::{Point, StartGrid, fit};
    use crate::store::import::import_rows;
    use crate::study::{ResultsSpec, ResultsX};

    let rows = import_rows(&ResultsSpec {
        path: args.csv.clone(),
        params_column: args.params.clone(),
        x_column: ResultsX::Flops(args.flops.clone()),
        loss_column: args.loss.clone(),
        drop_highest_loss: args.drop_highest_loss,
        filter: Vec::new(),
        unique: None,
        name_column: None,
        join: None,
        metrics: Vec::new(),
        variant_column: None,
    })
    .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    let points: Vec<Point> = rows
        .iter()
        .map(|r| Point {
            n: r.params_total,
            d: r.tokens,
            loss: r.loss,
        })
        .collect();
    let t = Instant::now();
    let grid = StartGrid::full();
    let full = fit(&points, 1e-3, &grid).map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    let grid_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let how = bootstrap::Resampling {
        resamples: args.bootstrap,
        confidence: 0.95,
        seed: 0,
        grid: (args.bootstrap_starts != "warm").then_some(&grid),
        pruned: args.bootstrap_starts == "pruned",
    };
    let ci = bootstrap::chinchilla(&points, 1e-3, &full, &[], &[], &how);
    let bootstrap_seconds = t.elapsed().as_secs_f64();
    let law = full.law;
    println!(
        "{}",
        serde_json::json!({
            "points": points.len(),
            "threads": args.threads,
            "grid_starts": full.starts,
            "grid_seconds": grid_seconds,
            "starts_at_best": full.starts_at_best,
            "objective": full.objective,
            "E": law.e, "A": law.a, "B": law.b, "alpha": law.alpha, "beta": law.beta,
            "bootstrap_resamples": args.bootstrap,
            "bootstrap_starts": args.bootstrap_starts,
            "bootstrap_seconds": bootstrap_seconds,
            "bootstrap_failed": ci.as_ref().map(|c| c.failed),
            "ci": ci.as_ref().map(|c| serde_json::json!({
                "E": [c.e.lo, c.e.hi],
                "alpha": [c.alpha.lo, c.alpha.hi],
                "beta": [c.beta.lo, c.beta.hi],
            })),
        })
    );
    Ok(())
}
