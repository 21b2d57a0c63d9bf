//! What a study's training cost: the CPU time of its recorded runs, and what the same runs
//! would have cost trained one by one (shared trunks train their common steps once).

use crate::store::{EntryState, Store};
use crate::study::RunSpec;

/// The recorded cost of a study's runs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spend {
    /// Runs with a record (finished, diverged or failed).
    pub records: usize,
    /// Σ run wall time × threads, in seconds: what the records cost (a branch counts the
    /// trunk steps it trained itself and its decay).
    pub cpu_seconds: f64,
    /// The same runs trained each on its own at their measured speed: a branch's time scaled
    /// from the tokens it trained to all of its tokens.
    pub independent_cpu_seconds: f64,
}

impl Spend {
    pub fn cpu_hours(&self) -> f64 {
        self.cpu_seconds / 3600.0
    }
}

/// The recorded cost of `specs` in `store`.
pub fn spend(store: &Store, specs: &[RunSpec]) -> Spend {
    let mut spend = Spend::default();
    for spec in specs {
        let (EntryState::Done(e) | EntryState::Failed(e)) = store.inspect(spec) else {
            continue;
        };
        let r = &e.result;
        let cpu = r.wall_seconds * r.threads.max(1) as f64;
        spend.records += 1;
        spend.cpu_seconds += cpu;
        spend.independent_cpu_seconds += cpu * r.independent_factor();
    }
    spend
}
