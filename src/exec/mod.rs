//! Executors train planned runs into the store: [`local::Local`] runs each as a
//! `scalebook train-point` child process, [`mock::Mock`] writes records from a known law
//! instantly (tests and demos). [`scheduler`] decides what to train, in which order, with
//! how many at once, and never trains a key twice.

pub mod local;
pub mod mock;
pub mod scheduler;
pub mod slurm;
pub mod tail;

use std::path::Path;

use crate::study::RunSpec;

/// Trains one run, writing its record (`result.json`, `curve.jsonl`, `spec.json`) into a
/// fresh folder.
pub trait Executor: Sync {
    /// Short name for messages (`local`, `mock`).
    fn name(&self) -> &'static str;

    /// Train `spec` into `out`, calling `on_step(step, loss)` as it goes. `Err` carries the
    /// reason when no record could be written (a crash); diverged runs write a record and
    /// return `Ok`.
    fn train(
        &self,
        spec: &RunSpec,
        out: &Path,
        on_step: &mut dyn FnMut(u64, f64),
    ) -> Result<(), String>;
}
