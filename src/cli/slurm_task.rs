//! `scalebook slurm-task --submission DIR --index I`: one task of a Slurm array (see
//! `exec::slurm`). It trains its run exactly as `scalebook run` would on this node — the
//! entry lock, a `train-point` child, an atomic publish — so a run already in the store
//! (trained locally meanwhile, or by an earlier attempt) ends the task at once, and a
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
    let spec = saved.spec(args.index).map_err(fail)?;
    let s = &saved.submission;
    let store = Store::open(&s.store).map_err(|e| {
        Failure::new(
            exit::INTERNAL,
            format!("{}: cannot open the run store: {e}", s.store.display()),
        )
    })?;
    let local = Local::new(super::current_exe()?, s.threads);
    let options = Options {
        jobs: 1,
        fail_fast: false,
        retry_failed: s.retry_failed,
        retrain_corrupt: s.retrain_corrupt,
    };
    println!(
        "slurm-task {}: run {} ({})",
        args.index, spec.name, spec.key
    );
    let summary = scheduler::run_all(&store, &local, &[spec], options, &|event| match event {
        Event::Cached { .. } => println!("already in the store: nothing to train"),
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
