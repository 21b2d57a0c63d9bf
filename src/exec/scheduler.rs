//! The scheduler: which planned runs need training, in what order, how many at once — and
//! the guarantee that no key is trained twice, by this process or any other on the store.
//!
//! Largest runs go first (the sweep's tail is then many small runs that pack well into the
//! workers). Each worker takes a run, tries its entry lock, and skips it for now if another
//! process holds it; once its own queue is empty it waits on those locks and re-checks, so a
//! run another process finished is reused and one whose owner died is trained here.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use super::Executor;
use crate::record::{RunResult, RunStatus, write_run};
use crate::store::{EntryLock, EntryState, Store};
use crate::study::RunSpec;
use crate::study::branches::{self, Branch};
use crate::train::trunk;

/// What happened, for the progress display.
#[derive(Debug, Clone)]
pub enum Event {
    /// Planned runs found finished in the store.
    Cached {
        count: usize,
    },
    /// A stored entry was unreadable and will be retrained.
    Corrupt {
        name: String,
        reason: String,
    },
    Started {
        name: String,
        steps: u64,
    },
    Step {
        name: String,
        step: u64,
        loss: f64,
    },
    Finished {
        name: String,
        outcome: Outcome,
        seconds: f64,
    },
}

/// How one run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Trained now.
    Ok { val_loss: Option<f64> },
    /// Found finished in the store (another process trained it meanwhile).
    Cached,
    /// Diverged or failed; the reason names the run.
    Failed { reason: String },
}

/// Scheduling options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub jobs: usize,
    /// Stop starting runs after the first failure.
    pub fail_fast: bool,
    /// Train again runs recorded as diverged or failed.
    pub retry_failed: bool,
    /// Train again entries that do not read back (false for published results: a damaged
    /// record is reported in [`Summary::damaged`], never replaced).
    pub retrain_corrupt: bool,
}

/// The sweep's outcome.
#[derive(Debug, Default)]
pub struct Summary {
    pub cached: usize,
    pub trained: usize,
    /// (run name, reason) of every planned run that is diverged or failed, recorded before
    /// or now.
    pub failed: Vec<(String, String)>,
    /// Store errors (unwritable folder, full disk): the sweep could not record results.
    pub store_errors: Vec<String>,
    /// (entry folder, why) of damaged records left as they are (see
    /// [`Options::retrain_corrupt`]).
    pub damaged: Vec<(String, String)>,
}

/// Sort planned runs into finished (counted), failed (listed, unless retried), damaged
/// (listed) and to train (returned, in plan order).
pub fn triage<'a>(
    store: &Store,
    specs: &'a [RunSpec],
    options: Options,
    events: &(dyn Fn(Event) + Sync),
) -> (Summary, Vec<&'a RunSpec>) {
    let mut summary = Summary::default();
    let mut queue: Vec<&RunSpec> = Vec::new();
    for spec in specs {
        match store.inspect(spec) {
            EntryState::Done(_) => summary.cached += 1,
            EntryState::Failed(r) if !options.retry_failed => {
                summary
                    .failed
                    .push((spec.name.clone(), reason_of(&r.result)));
            }
            EntryState::Failed(_) | EntryState::Missing => queue.push(spec),
            EntryState::Corrupt(reason) if !options.retrain_corrupt => {
                summary.damaged.push((spec.dir_name(), reason));
            }
            EntryState::Corrupt(reason) => {
                events(Event::Corrupt {
                    name: spec.dir_name(),
                    reason,
                });
                queue.push(spec);
            }
        }
    }
    if summary.cached > 0 {
        events(Event::Cached {
            count: summary.cached,
        });
    }
    (summary, queue)
}

/// Bring every planned run to a recorded state. Of a shared trunk's branches the longest
/// starts first and trains the trunk, leaving a snapshot at every branch point; each other
/// branch starts on any free worker once its snapshot is there and trains only its decay. So
/// the trunk is trained once, and its snapshots are deleted as its branches finish.
pub fn run_all(
    store: &Store,
    executor: &dyn Executor,
    specs: &[RunSpec],
    options: Options,
    events: &(dyn Fn(Event) + Sync),
) -> Summary {
    // Half-written runs of killed processes (of any key, this plan's or an old one's).
    store.clean_stale_partials();
    let (summary, queue) = triage(store, specs, options, events);
    let mut groups = branches::by_trunk(&queue);
    // Largest first; the name breaks ties so the order is reproducible.
    let flops = |g: &Vec<&RunSpec>| g.iter().map(|s| s.flops).sum::<f64>();
    groups.sort_by(|a, b| {
        flops(b)
            .total_cmp(&flops(a))
            .then_with(|| a[0].name.cmp(&b[0].name))
    });
    let workers = options.jobs.clamp(1, queue.len().max(1));
    let state = Mutex::new(Shared {
        groups: groups
            .into_iter()
            .map(|specs| Group {
                specs,
                next: 0,
                running: 0,
            })
            .collect(),
        deferred: VecDeque::new(),
        stop: false,
        summary,
    });
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| worker(store, executor, &state, options, events));
        }
    });
    state.into_inner().expect("no worker panics").summary
}

/// Runs to train: one run, or a trunk's branches (the longest first, then the others in the
/// order they leave the trunk).
struct Group<'a> {
    specs: Vec<&'a RunSpec>,
    /// The next to start.
    next: usize,
    /// Started and not yet recorded.
    running: usize,
}

impl Group<'_> {
    fn trunk(&self) -> Option<&Branch> {
        self.specs[0].identity.branch.as_ref()
    }

    /// Whether the next branch can start without training trunk steps another process is
    /// training: it is the first (the longest, which trains the trunk), its branch point's
    /// snapshot is there, or the first is recorded (whatever snapshots it left).
    fn ready(&self, store: &Store) -> bool {
        if self.next == 0 {
            return true;
        }
        let Some(b) = &self.specs[self.next].identity.branch else {
            return true;
        };
        trunk::has_snapshot(&store.trunks_dir(), &b.trunk, b.decay_start)
            || !matches!(store.inspect(self.specs[0]), EntryState::Missing)
    }
}

struct Shared<'a> {
    groups: Vec<Group<'a>>,
    /// Runs whose lock another process held when we first tried.
    deferred: VecDeque<&'a RunSpec>,
    stop: bool,
    summary: Summary,
}

pub fn reason_of(r: &RunResult) -> String {
    r.reason
        .clone()
        .unwrap_or_else(|| format!("run {} {:?}", r.name, r.status).to_lowercase())
}

/// What a worker takes next: a run it holds the lock of, or the next branch of a trunk (by
/// its group's index).
enum Work<'a> {
    One(&'a RunSpec, EntryLock),
    Branch(&'a RunSpec, usize),
}

/// What [`take`] found.
enum Taken<'a> {
    Run(&'a RunSpec),
    Branch(&'a RunSpec, usize),
    /// Only branches whose predecessor is still on the trunk: started now, they would train
    /// the trunk's steps a second time.
    Wait,
    Nothing,
}

/// The next piece of work, largest first: a run, or a branch that can start now.
fn take<'a>(store: &Store, s: &mut Shared<'a>) -> Taken<'a> {
    let open = |g: &Group| g.next < g.specs.len();
    let Some(pick) = s
        .groups
        .iter()
        .position(|g| open(g) && (g.trunk().is_none() || g.ready(store)))
    else {
        return if s.groups.iter().any(open) {
            Taken::Wait
        } else {
            Taken::Nothing
        };
    };
    let g = &mut s.groups[pick];
    let spec = g.specs[g.next];
    g.next += 1;
    if g.trunk().is_none() {
        return Taken::Run(spec);
    }
    g.running += 1;
    Taken::Branch(spec, pick)
}

fn next_work<'a>(store: &Store, state: &Mutex<Shared<'a>>) -> Option<Work<'a>> {
    loop {
        let mut s = state.lock().expect("scheduler lock");
        if s.stop {
            return None;
        }
        match take(store, &mut s) {
            Taken::Branch(spec, group) => return Some(Work::Branch(spec, group)),
            Taken::Run(spec) => {
                drop(s);
                match store.try_lock(spec) {
                    Ok(Some(lock)) => return Some(Work::One(spec, lock)),
                    Ok(None) => state
                        .lock()
                        .expect("scheduler lock")
                        .deferred
                        .push_back(spec),
                    Err(e) => store_error(state, format!("{}: cannot lock: {e}", spec.dir_name())),
                }
            }
            Taken::Wait if s.deferred.is_empty() => {
                drop(s);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Taken::Wait | Taken::Nothing => {
                let spec = s.deferred.pop_front()?;
                drop(s);
                match store.lock(spec) {
                    Ok(lock) => return Some(Work::One(spec, lock)),
                    Err(e) => store_error(state, format!("{}: cannot lock: {e}", spec.dir_name())),
                }
            }
        }
    }
}

fn worker(
    store: &Store,
    executor: &dyn Executor,
    state: &Mutex<Shared>,
    options: Options,
    events: &(dyn Fn(Event) + Sync),
) {
    while let Some(work) = next_work(store, state) {
        match work {
            Work::One(spec, lock) => {
                let outcome = train_locked(store, executor, spec, &lock, options, events);
                tally(state, spec, outcome, options);
            }
            Work::Branch(spec, group) => {
                // Wait for a branch another process is training.
                let outcome = match store.lock(spec) {
                    Ok(lock) => train_locked(store, executor, spec, &lock, options, events),
                    Err(e) => Err(format!("{}: cannot lock: {e}", spec.dir_name())),
                };
                tally(state, spec, outcome, options);
                let done = {
                    let mut s = state.lock().expect("scheduler lock");
                    let g = &mut s.groups[group];
                    g.running -= 1;
                    g.next == g.specs.len() && g.running == 0
                };
                let b = spec.identity.branch.as_ref().expect("a branch");
                // The branch's own snapshot serves no one now; once every branch is recorded,
                // none does.
                if done {
                    trunk::remove_trunk(&store.trunks_dir(), &b.trunk);
                } else {
                    trunk::remove_snapshot(&store.trunks_dir(), &b.trunk, b.decay_start);
                }
            }
        }
    }
}

/// Count a run's outcome.
fn tally(
    state: &Mutex<Shared>,
    spec: &RunSpec,
    outcome: Result<Outcome, String>,
    options: Options,
) {
    let mut s = state.lock().expect("scheduler lock");
    match outcome {
        Ok(Outcome::Cached) => s.summary.cached += 1,
        Ok(Outcome::Ok { .. }) => s.summary.trained += 1,
        Ok(Outcome::Failed { reason }) => {
            s.summary.trained += 1;
            s.summary.failed.push((spec.name.clone(), reason));
            if options.fail_fast {
                s.stop = true;
            }
        }
        Err(e) => {
            s.summary.store_errors.push(e);
            // Without a writable store nothing more can be recorded.
            s.stop = true;
        }
    }
}

fn store_error(state: &Mutex<Shared>, message: String) {
    let mut s = state.lock().expect("scheduler lock");
    s.summary.store_errors.push(message);
    s.stop = true;
}

/// Train `spec` while holding its lock; `Err` is a store failure.
fn train_locked(
    store: &Store,
    executor: &dyn Executor,
    spec: &RunSpec,
    lock: &EntryLock,
    options: Options,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Outcome, String> {
    // Another process may have finished it while we waited for the lock — or recorded it
    // as failed, which stands unless failures are to be retried.
    let settled = match store.inspect(spec) {
        EntryState::Done(_) => Some(Outcome::Cached),
        EntryState::Failed(e) if !options.retry_failed => Some(Outcome::Failed {
            reason: reason_of(&e.result),
        }),
        _ => None,
    };
    if let Some(outcome) = settled {
        events(Event::Finished {
            name: spec.name.clone(),
            outcome: outcome.clone(),
            seconds: 0.0,
        });
        return Ok(outcome);
    }
    let partial = store.start_partial(spec, lock).map_err(|e| {
        format!(
            "{}: cannot create a run folder: {e}",
            store.root().display()
        )
    })?;
    events(Event::Started {
        name: spec.name.clone(),
        steps: spec.steps,
    });
    let start = Instant::now();
    let mut on_step = |step, loss| {
        events(Event::Step {
            name: spec.name.clone(),
            step,
            loss,
        })
    };
    if let Err(reason) = executor.train(spec, &partial, &mut on_step) {
        // No record was written (a crash): record the failure so the sweep can go on.
        let reason = format!("run {}: {reason}", spec.name);
        let result = RunResult::unfinished(spec, RunStatus::Failed, Some(reason));
        write_run(&partial, &result, &[], None)
            .map_err(|e| format!("{}: cannot write a run record: {e}", partial.display()))?;
    }
    store
        .commit(spec, &partial, lock)
        .map_err(|e| format!("{}: cannot publish run: {e}", partial.display()))?;
    let outcome = match store.inspect(spec) {
        EntryState::Done(r) => Outcome::Ok {
            val_loss: r.result.val_loss,
        },
        EntryState::Failed(r) => Outcome::Failed {
            reason: reason_of(&r.result),
        },
        EntryState::Missing => {
            return Err(format!(
                "{}: the record just written is not there",
                store.entry_dir(spec).display()
            ));
        }
        EntryState::Corrupt(why) => {
            return Err(format!(
                "{}: the record just written cannot be read back: {why}",
                store.entry_dir(spec).display()
            ));
        }
    };
    events(Event::Finished {
        name: spec.name.clone(),
        outcome: outcome.clone(),
        seconds: start.elapsed().as_secs_f64(),
    });
    Ok(outcome)
}
