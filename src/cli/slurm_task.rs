//! `scalebook slurm-task --submission DIR --index I`: one task of a Slurm array (see
//! `exec::slurm`). It trains its runs, one after another, exactly as `scalebook run` would
//! on this node — the
//! entry lock, a `train-point` child, an atomic publish — so a run already in the store
//! (trained locally meanwhile, or by an earlier attempt) is skipped at once, and a
//! requeued task trains from the start and never publishes half an entry. Its log lines
//! (`{"step":…,"loss":…}`) are what the watcher shows as progress.

use std::path::PathBuf;

use super::{Failure, exit};
use crate::exec::local::Local;
use crate::exec::scheduler::{self, Event, Options, Outcome};
use crate::exec::slurm::submission::Saved;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The submission folder in the store (`STORE/slurm/<id>`).
    #[arg(long)]
    pub submission: PathBuf,
    /// The array task's index (`$SLURM_ARRAY_TASK_ID`).
    #[arg(long)]
    pub index: usize,
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let fail = |e: String| Failure::new(exit::USAGE, e);
    let saved = Saved::read(&args.submission).map_err(fail)?;
    let s = &saved.submission;
    let runs = s.tasks.get(args.index).ok_or_else(|| {
        fail(format!(
            "{}: the submission has {} tasks, not task {}",
            args.submission.display(),
            s.tasks.len(),
            args.index
        ))
    })?;
    let specs = runs
        .iter()
        .map(|&r| saved.spec(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    let store = Store::open(&s.store).map_err(|e| {
        Failure::new(
            exit::INTERNAL,
            format!("{}: cannot open the run store: {e}", s.store.display()),
        )
    })?;
    let local = Local::new(super::current_exe()?, s.threads).with_trunks(store.trunks_dir());
    let options = Options {
        jobs: 1,
        fail_fast: false,
        retry_failed: s.retry_failed,
        retrain_corrupt: s.retrain_corrupt,
    };
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    println!("slurm-task {}: runs {}", args.index, names.join(" "));
    let summary = scheduler::run_all(&store, &local, &specs, options, &|event| match event {
        Event::Cached { count } => println!("{count} run(s) already in the store"),
        Event::Started { name, steps } => println!("train-point {name} ({steps} steps)"),
        Event::Step { step, loss, .. } => println!("{{\"step\":{step},\"loss\":{loss}}}"),
        Event::Finished { name, outcome, .. } => match outcome {
            Outcome::Ok { val_loss } => println!("{name}: ok, val loss {val_loss:?}"),
            Outcome::Cached => println!("{name}: finished by another process"),
            Outcome::Failed { reason } => println!("{name}: failed: {reason}"),
        },
        Event::Corrupt { name, reason } => println!("{name}: {reason}; retraining it"),
    });
    if !summary.store_errors.is_empty() {
        return Err(Failure {
            code: exit::INTERNAL,
            lines: summary.store_errors,
        });
    }
    // A diverged or failed run is recorded with its reason: the task itself succeeded.
    Ok(())
}
