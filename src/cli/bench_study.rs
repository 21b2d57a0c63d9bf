//! `scalebook bench study STUDY`: a whole study's wall time end to end — scalebook's engine
//! (with shared trunks when the study has them) against the same grid trained by a PyTorch
//! trainer through the trainer contract, one process per run, the same jobs × threads — and
//! the ratio. Both train into fresh stores; nothing is cached.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::{Failure, Format, exit, load_study};
use crate::exec::local::Local;
use crate::exec::scheduler::{self, Options};
use crate::pipeline::spend::spend;
use crate::store::Store;
use crate::study::plan::{add_entropy, plan};
use crate::study::trainer::{ExternalTrainer, Template};
use crate::study::units::format_duration;
use crate::study::{RunSpec, Source, Study};

#[derive(Debug, clap::Args)]
pub struct StudyArgs {
    /// The study file whose grid both trainers train.
    pub study: PathBuf,
    /// The PyTorch trainer (a trainer-contract command; `{spec}` is the job file).
    #[arg(long, default_value = "python3 torch_gpt.py --spec {spec}")]
    pub torch: String,
    /// Folder the PyTorch command runs in.
    #[arg(long, default_value = "examples/trainers")]
    pub workdir: PathBuf,
    /// Runs at once (default: the cores, one thread each, as `scalebook run`).
    #[arg(long)]
    pub jobs: Option<usize>,
    #[arg(long, default_value_t = 1, value_parser = super::parse_threads)]
    pub threads_per_job: usize,
    /// Keep both stores here (default: a temporary folder, removed afterwards).
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// One side of the comparison.
#[derive(Debug, Serialize)]
pub struct Side {
    pub trainer: String,
    pub runs: usize,
    pub failed: usize,
    pub wall_seconds: f64,
    pub cpu_hours: f64,
}

#[derive(Debug, Serialize)]
pub struct StudyBench {
    pub study: String,
    pub jobs: usize,
    pub threads_per_job: usize,
    pub scalebook: Side,
    pub torch: Side,
    /// PyTorch's wall time over scalebook's.
    pub speedup: f64,
    /// Mean |relative difference| of the final validation loss, point by point.
    pub mean_loss_difference: Option<f64>,
}

pub fn run(args: &StudyArgs) -> Result<(), Failure> {
    let study = load_study(&args.study)?;
    let Some(training) = study.training() else {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "{}: imports results; there is nothing to train",
                args.study.display()
            ),
        ));
    };
    if training.external.is_some() {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "{}: names its own trainer; `bench study` compares the built-in engine with \
                 PyTorch",
                args.study.display()
            ),
        ));
    }
    let jobs = args
        .jobs
        .unwrap_or(crate::sys::default_threads() / args.threads_per_job)
        .max(1);
    let scratch = args.scratch.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("scalebook-bench-study-{}", std::process::id()))
    });
    let torch_study = with_torch(&study, args)?;
    let ours = train(&study, &scratch.join("scalebook"), args, jobs, "scalebook")?;
    let theirs = train(&torch_study, &scratch.join("torch"), args, jobs, "pytorch")?;
    let report = StudyBench {
        study: study.name.clone(),
        jobs,
        threads_per_job: args.threads_per_job,
        speedup: theirs.0.wall_seconds / ours.0.wall_seconds,
        mean_loss_difference: loss_difference(&ours.1, &theirs.1),
        scalebook: ours.0,
        torch: theirs.0,
    };
    if args.scratch.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    print(&report, args.format);
    Ok(())
}

/// The study with every run trained by the PyTorch command (independent runs: an external
/// trainer shares no trunks).
fn with_torch(study: &Study, args: &StudyArgs) -> Result<Study, Failure> {
    Template::parse(&args.torch).map_err(|e| Failure::new(exit::USAGE, format!("--torch: {e}")))?;
    let workdir = std::path::absolute(&args.workdir)
        .map_err(|e| Failure::new(exit::USAGE, format!("{}: {e}", args.workdir.display())))?;
    if !workdir.is_dir() {
        return Err(Failure::new(
            exit::USAGE,
            format!("--workdir {}: not a folder", args.workdir.display()),
        ));
    }
    let external = ExternalTrainer {
        command: args.torch.clone(),
        version: "bench".into(),
        env: Default::default(),
        workdir: Some(workdir),
        timeout_seconds: None,
        tolerance: 0.0,
        stream_tokens: false,
    };
    let mut other = study.clone();
    if let Source::Train(plan) = &mut other.source {
        plan.producer = external.producer();
        plan.external = Some(external);
        plan.branching = None;
    }
    Ok(other)
}

/// Train every run of `study` into a fresh store at `dir`; the side's numbers and the
/// records' (point, loss).
fn train(
    study: &Study,
    dir: &std::path::Path,
    args: &StudyArgs,
    jobs: usize,
    label: &str,
) -> Result<(Side, Vec<(String, f64)>), Failure> {
    let _ = std::fs::remove_dir_all(dir);
    let store = Store::open(dir).map_err(|e| {
        Failure::new(
            exit::INTERNAL,
            format!("{}: cannot open a store: {e}", dir.display()),
        )
    })?;
    let mut specs: Vec<RunSpec> =
        plan(study).map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    add_entropy(study, &mut specs);
    let exe = super::current_exe()?;
    let local = Local::new(exe, args.threads_per_job).with_trunks(store.trunks_dir());
    let options = Options {
        jobs,
        fail_fast: false,
        retry_failed: false,
        retrain_corrupt: true,
    };
    eprintln!("bench study: training {} runs with {label}", specs.len());
    let start = Instant::now();
    let summary = scheduler::run_all(&store, &local, &specs, options, &|_| {});
    let wall = start.elapsed().as_secs_f64();
    let losses = specs
        .iter()
        .filter_map(|s| match store.inspect(s) {
            crate::store::EntryState::Done(e) => Some((s.point().to_string(), e.result.val_loss?)),
            _ => None,
        })
        .collect();
    Ok((
        Side {
            trainer: label.into(),
            runs: specs.len(),
            failed: summary.failed.len(),
            wall_seconds: wall,
            cpu_hours: spend(&store, &specs).cpu_hours(),
        },
        losses,
    ))
}

fn loss_difference(a: &[(String, f64)], b: &[(String, f64)]) -> Option<f64> {
    let d: Vec<f64> = a
        .iter()
        .filter_map(|(p, x)| {
            let y = b.iter().find(|(q, _)| q == p)?.1;
            Some(((x - y) / y).abs())
        })
        .collect();
    (!d.is_empty()).then(|| d.iter().sum::<f64>() / d.len() as f64)
}

fn print(r: &StudyBench, format: Format) {
    match format {
        Format::Json => println!("{}", serde_json::to_string(r).expect("plain data")),
        Format::Table => {
            println!(
                "study {}: {} job(s) × {} thread(s), every run trained from scratch",
                r.study, r.jobs, r.threads_per_job
            );
            for s in [&r.scalebook, &r.torch] {
                println!(
                    "  {:<10} {:>3} runs ({} failed)  wall {:>9}  {:.4} CPU-hours",
                    s.trainer,
                    s.runs,
                    s.failed,
                    format_duration(s.wall_seconds),
                    s.cpu_hours
                );
            }
            println!("  scalebook is {:.2}× faster end to end", r.speedup);
            if let Some(d) = r.mean_loss_difference {
                println!("  final losses differ by {:.2} % on average", 100.0 * d);
            }
        }
    }
}
