//! Following submitted arrays to their end: `scontrol` once a second (`sacct` for jobs
//! Slurm has forgotten), each task's log for its runs' starts and steps, the store for
//! their outcomes — and, for a run whose task ended without its record, a failure recorded
//! with Slurm's reason. SIGINT or SIGTERM asks (on a terminal) whether to cancel the
//! arrays, and cancels them otherwise.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Stop;
use super::cluster::{self, Ending, TaskState};
use super::submission::Saved;
use crate::exec::scheduler::{Event, Outcome, Summary, reason_of};
use crate::exec::tail::{LineTail, step_of};
use crate::record::{RunResult, RunStatus, write_run};
use crate::store::{EntryState, Store};
use crate::study::RunSpec;

/// How often the watcher asks Slurm (at most once a second).
const POLL: Duration = Duration::from_secs(1);

/// Consecutive failed queries of Slurm before the watcher gives up (a minute of polls).
const MAX_QUERY_FAILURES: u32 = 60;

/// Set by SIGINT or SIGTERM while the watcher runs.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn interrupted(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// One watched array.
struct Watched {
    saved: Saved,
    job: u64,
    /// Every run's spec, by run index.
    specs: Vec<RunSpec>,
    /// Each task's last seen state; `None` once settled (or not followed).
    states: Vec<Option<TaskState>>,
    logs: HashMap<usize, LogTail>,
}

/// Follow the arrays until each task that trains one of `todo` (keys) has ended.
pub(super) fn watch(
    store: &Store,
    saved: Vec<Saved>,
    todo: &[&str],
    summary: &mut Summary,
    events: &(dyn Fn(Event) + Sync),
) -> Result<(), Stop> {
    let mut watched = Vec::new();
    for s in saved {
        let specs = (0..s.submission.runs.len())
            .map(|i| s.spec(i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Stop::Store)?;
        // Tasks of an attached array none of whose runs this study waits for (finished,
        // or another study's) are not followed.
        let states = s
            .submission
            .tasks
            .iter()
            .map(|runs| {
                runs.iter()
                    .any(|&r| todo.contains(&specs[r].key.as_str()))
                    .then_some(TaskState::Pending)
            })
            .collect();
        watched.push(Watched {
            job: s.submission.job_id.unwrap_or(0),
            saved: s,
            specs,
            states,
            logs: HashMap::new(),
        });
    }
    INTERRUPTED.store(false, Ordering::SeqCst);
    // SAFETY: the handler only stores to an atomic.
    let previous = unsafe {
        [libc::SIGINT, libc::SIGTERM].map(|sig| {
            (
                sig,
                libc::signal(sig, interrupted as *const () as libc::sighandler_t),
            )
        })
    };
    let result = watch_loop(store, &mut watched, summary, events);
    // SAFETY: restoring the handlers found.
    unsafe {
        for (sig, handler) in previous {
            libc::signal(sig, handler);
        }
    }
    result?;
    for w in &mut watched {
        w.saved
            .finish()
            .map_err(|e| Stop::Store(format!("{}: {e}", w.saved.dir.display())))?;
    }
    Ok(())
}

fn watch_loop(
    store: &Store,
    watched: &mut [Watched],
    summary: &mut Summary,
    events: &(dyn Fn(Event) + Sync),
) -> Result<(), Stop> {
    let mut cancelled = false;
    let mut failures = 0;
    loop {
        if INTERRUPTED.swap(false, Ordering::SeqCst) && !cancelled {
            let jobs: Vec<u64> = watched.iter().map(|w| w.job).collect();
            if !confirm_cancel(&jobs) {
                return Err(Stop::Detached(jobs));
            }
            for job in &jobs {
                if let Err(e) = cluster::cancel(*job) {
                    eprintln!("warning: {e}");
                }
            }
            eprintln!("cancelled Slurm job(s) {jobs:?}; recording the runs that did not finish");
            cancelled = true;
        }
        let mut open = 0;
        for w in watched.iter_mut() {
            let states = match cluster::tasks(w.job) {
                Ok(states) => {
                    failures = 0;
                    states
                }
                // A controller that does not answer for a while is not an ended array.
                Err(e) if failures < MAX_QUERY_FAILURES => {
                    failures += 1;
                    eprintln!("warning: {e}; asking again");
                    open += 1;
                    continue;
                }
                Err(e) => return Err(Stop::Unavailable(e)),
            };
            open += follow(store, w, states, summary, events)?;
        }
        if open == 0 {
            return Ok(());
        }
        let until = Instant::now() + POLL;
        while Instant::now() < until && !INTERRUPTED.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One poll of one array: progress from the logs, outcomes of the tasks that ended. The
/// number of tasks still open.
fn follow(
    store: &Store,
    w: &mut Watched,
    states: Option<Vec<(usize, TaskState)>>,
    summary: &mut Summary,
    events: &(dyn Fn(Event) + Sync),
) -> Result<usize, Stop> {
    let forgotten = states.is_none();
    let states: HashMap<usize, TaskState> = states
        .or_else(|| cluster::accounting(w.job))
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut open = 0;
    for task in 0..w.states.len() {
        let Some(last) = w.states[task].clone() else {
            continue;
        };
        let now = match states.get(&task) {
            Some(s) => s.clone(),
            None if forgotten => TaskState::Ended(unknown()),
            None => last,
        };
        if now == TaskState::Running
            && !w.logs.contains_key(&task)
            && let Some(log) = w.saved.log(task)
        {
            w.logs.insert(task, LogTail::new(log));
        }
        if let Some(log) = w.logs.get_mut(&task) {
            log.follow(&w.specs, events);
        }
        match now {
            TaskState::Ended(ending) => {
                w.logs.remove(&task);
                for &run in &w.saved.submission.tasks[task] {
                    let outcome = settle(store, &w.saved, task, &w.specs[run], &ending)?;
                    count(summary, &w.specs[run], outcome, events);
                }
                w.states[task] = None;
            }
            state => {
                open += 1;
                w.states[task] = Some(state);
            }
        }
    }
    Ok(open)
}

fn unknown() -> Ending {
    Ending::Other("unknown (the job left Slurm's memory)".into())
}

/// Ask before cancelling on a terminal (SIGINT); cancel without asking otherwise.
fn confirm_cancel(jobs: &[u64]) -> bool {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return true;
    }
    eprint!(
        "\ncancel Slurm job(s) {jobs:?}? [y/N] (no: leave them running; `scalebook run` \
         attaches again) "
    );
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

fn count(summary: &mut Summary, spec: &RunSpec, outcome: Outcome, events: &(dyn Fn(Event) + Sync)) {
    match &outcome {
        Outcome::Failed { reason } => {
            summary.trained += 1;
            summary.failed.push((spec.name.clone(), reason.clone()));
        }
        Outcome::Ok { .. } => summary.trained += 1,
        Outcome::Cached => summary.cached += 1,
    }
    events(Event::Finished {
        name: spec.name.clone(),
        outcome,
        seconds: 0.0,
    });
}

/// A task has ended: its run's outcome from the store, or — when it left no record — a
/// failure recorded with Slurm's reason.
fn settle(
    store: &Store,
    saved: &Saved,
    task: usize,
    spec: &RunSpec,
    ending: &Ending,
) -> Result<Outcome, Stop> {
    match store.inspect(spec) {
        EntryState::Done(e) => Ok(Outcome::Ok {
            val_loss: e.result.val_loss,
        }),
        EntryState::Failed(e) => Ok(Outcome::Failed {
            reason: reason_of(&e.result),
        }),
        EntryState::Missing | EntryState::Corrupt(_) => {
            let job = saved.submission.job_id.unwrap_or(0);
            let said = saved
                .log(task)
                .filter(|_| matches!(ending, Ending::Completed | Ending::Failed { .. }))
                .and_then(|log| crate::external::process::last_log_line(&log))
                .map(|l| format!(": {l}"))
                .unwrap_or_default();
            let reason = format!(
                "run {}: Slurm task {job}_{task}: {}{said}",
                spec.name,
                ending.reason()
            );
            record_failure(store, spec, &reason)?;
            Ok(Outcome::Failed { reason })
        }
    }
}

/// Settle every task of an array that ended while nobody watched.
pub(super) fn settle_all(
    store: &Store,
    saved: &Saved,
    states: Option<Vec<(usize, TaskState)>>,
    summary: &mut Summary,
) -> Result<(), Stop> {
    let job = saved.submission.job_id.unwrap_or(0);
    let states: HashMap<usize, TaskState> = states
        .or_else(|| cluster::accounting(job))
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (task, runs) in saved.submission.tasks.iter().enumerate() {
        let ending = match states.get(&task) {
            Some(TaskState::Ended(e)) => e.clone(),
            _ => unknown(),
        };
        for &run in runs {
            let Ok(spec) = saved.spec(run) else {
                continue;
            };
            let outcome = settle(store, saved, task, &spec, &ending)?;
            count(summary, &spec, outcome, &|_| {});
        }
    }
    Ok(())
}

/// Record `spec` as failed with `reason`, unless it has a record or someone is training it.
fn record_failure(store: &Store, spec: &RunSpec, reason: &str) -> Result<(), Stop> {
    let err = |e: std::io::Error| Stop::Store(format!("{}: {e}", store.entry_dir(spec).display()));
    let Some(lock) = store.try_lock(spec).map_err(err)? else {
        return Ok(());
    };
    if matches!(
        store.inspect(spec),
        EntryState::Done(_) | EntryState::Failed(_)
    ) {
        return Ok(());
    }
    let partial = store.start_partial(spec, &lock).map_err(err)?;
    let result = RunResult::unfinished(spec, RunStatus::Failed, Some(reason.to_string()));
    write_run(&partial, &result, &[], None).map_err(err)?;
    store.commit(spec, &partial, &lock).map_err(err)
}

/// A task's log as it grows: `train-point NAME (N steps)` starts a run, step lines are its
/// progress.
struct LogTail {
    lines: LineTail,
    current: Option<String>,
}

impl LogTail {
    fn new(path: PathBuf) -> Self {
        LogTail {
            lines: LineTail::new(path),
            current: None,
        }
    }

    fn follow(&mut self, specs: &[RunSpec], events: &(dyn Fn(Event) + Sync)) {
        let mut last_step = None;
        for line in self.lines.lines() {
            if let Some(rest) = line.strip_prefix("train-point ") {
                let name = rest.split_whitespace().next().unwrap_or("");
                if let Some(spec) = specs.iter().find(|s| s.name == name) {
                    self.current = Some(spec.name.clone());
                    events(Event::Started {
                        name: spec.name.clone(),
                        steps: spec.steps,
                    });
                }
            } else if let Some(step) = step_of(&line) {
                last_step = Some(step);
            }
        }
        if let (Some(name), Some((step, loss))) = (&self.current, last_step) {
            events(Event::Step {
                name: name.clone(),
                step,
                loss,
            });
        }
    }
}
