//! `scalebook train-point --spec SPEC.json --out DIR [--threads N]`: train one run from a run
//! spec (written by `scalebook plan --emit-specs`) and write its record into DIR.

use std::path::PathBuf;

use super::progress::RunProgress;
use super::{Failure, exit};
use crate::external;
use crate::record::{self, RunStatus};
use crate::study::RunSpec;
use crate::study::diagnostics::io_reason;
use crate::train::{self, TrainError, TrainOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run spec (JSON) from `scalebook plan STUDY --emit-specs DIR`.
    #[arg(long)]
    pub spec: PathBuf,
    /// Folder for spec.json, curve.jsonl and result.json (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Threads for this run (default: every core).
    #[arg(long, value_parser = super::parse_threads)]
    pub threads: Option<usize>,
    /// `auto`: a bar on a terminal, log lines otherwise; `json`: one `{"step":…,"loss":…}`
    /// line per step on stderr, for executors.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// External trainers only: the accelerator this run may use (exported as
    /// `CUDA_VISIBLE_DEVICES` and given as `{device}`).
    #[arg(long)]
    pub device: Option<String>,
    /// Folder of shared WSD trunks (`STORE/trunks`): a branch continues its trunk's newest
    /// snapshot there instead of training its first steps again (the numbers are the same).
    #[arg(long)]
    pub trunks: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    Auto,
    Json,
}

/// Read a run spec file.
pub fn read_spec(path: &std::path::Path) -> Result<RunSpec, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            exit::USAGE,
            format!(
                "{}: cannot read run spec: {}",
                path.display(),
                io_reason(&e)
            ),
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            exit::USAGE,
            format!(
                "{}: not a scalebook run spec ({e}); create specs with `scalebook plan STUDY --emit-specs DIR`",
                path.display()
            ),
        )
    })
}

pub fn run(args: &Args, threads: usize) -> Result<(), Failure> {
    let spec = read_spec(&args.spec)?;
    let json = args.progress == ProgressMode::Json;
    let mut progress = (!json).then(|| RunProgress::new(&spec.name, spec.steps));
    let trained = if spec.is_external() {
        let options = external::Options {
            threads,
            device: args.device.clone(),
        };
        let start = std::time::Instant::now();
        let per_step = spec.identity.train.batch * spec.identity.model.context;
        external::train(
            &spec,
            &args.out,
            &options,
            &mut |step, loss| match &mut progress {
                Some(bar) => bar.update(&train::Progress {
                    step,
                    steps: spec.steps,
                    tokens: step * per_step,
                    train_loss: loss,
                    val_loss: None,
                    lr: train::schedule::lr_at(
                        &spec.identity.train,
                        step.saturating_sub(1),
                        spec.steps,
                    ),
                    elapsed: start.elapsed().as_secs_f64(),
                }),
                None => eprintln!("{{\"step\":{step},\"loss\":{loss}}}"),
            },
        )
    } else {
        // Specs carry the entropy computed at plan time; hand-made specs get it here.
        let entropy = spec
            .data_entropy
            .or_else(|| spec.data.entropy(spec.identity.seed));
        train::train(
            &spec,
            entropy,
            &TrainOptions {
                threads,
                trunks: args.trunks.clone(),
            },
            &mut |p| match &mut progress {
                Some(bar) => bar.update(p),
                None => eprintln!("{{\"step\":{},\"loss\":{}}}", p.step, p.train_loss),
            },
        )
    };
    if let Some(bar) = &progress {
        bar.finish();
    }
    let trained = trained.map_err(|e| match e {
        TrainError::Data(_) | TrainError::Spec(_) => Failure::new(exit::USAGE, e.to_string()),
    })?;
    record::write_run(
        &args.out,
        &trained.result,
        &trained.curve,
        trained.tokenizer.as_ref(),
    )
    .map_err(|e| {
        Failure::new(
            exit::INTERNAL,
            format!(
                "{}: cannot write the record of run {}: {}",
                args.out.display(),
                spec.name,
                io_reason(&e)
            ),
        )
    })?;
    let r = &trained.result;
    match r.status {
        RunStatus::Ok => {
            let entropy = r
                .data_entropy_nats
                .map(|e| format!(" (data entropy {e:.4})"))
                .unwrap_or_default();
            eprintln!(
                "{}: ok — val loss {:.4}{entropy}, {:.1} s, {:.0} tokens/s → {}",
                r.name,
                r.val_loss.unwrap_or(f64::NAN),
                r.wall_seconds,
                r.tokens_per_second,
                args.out.display()
            );
            Ok(())
        }
        RunStatus::Diverged | RunStatus::Failed => Err(Failure::new(
            exit::RUNS_FAILED,
            r.reason
                .clone()
                .unwrap_or_else(|| format!("run {} did not finish", r.name)),
        )),
    }
}
