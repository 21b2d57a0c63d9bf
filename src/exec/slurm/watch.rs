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

/// How long a task may show `NODE_FAIL` or `PREEMPTED` before its ending counts: the
/// script asks for `--requeue`, so Slurm puts such a task back in the queue within seconds,
/// and a failure recorded meanwhile would leave the requeued task nothing to train.
const REQUEUE_GRACE: Duration = Duration::from_secs(120);

/// Whether Slurm may still requeue a task that ended this way.
fn requeueable(ending: &Ending) -> bool {
    matches!(ending, Ending::NodeFailure | Ending::Preempted)
}

/// A state as the watcher acts on it: a requeueable ending first seen at `since` stays
/// open (as pending) until the grace has passed, or Slurm has forgotten the job.
pub(super) fn effective(now: TaskState, since: Option<Instant>, forgotten: bool) -> TaskState {
    match now {
        TaskState::Ended(ending)
            if requeueable(&ending)
                && !forgotten
                && since.is_none_or(|t| t.elapsed() < REQUEUE_GRACE) =>
        {
            TaskState::Pending
        }
        state => state,
    }
}

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
    /// When each task was first seen in an ending Slurm may still requeue.
    requeueable_since: HashMap<usize, Instant>,
    /// Runs (indices) whose outcome has been counted.
    settled: Vec<bool>,
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
            settled: vec![false; specs.len()],
            saved: s,
            specs,
            states,
            logs: HashMap::new(),
            requeueable_since: HashMap::new(),
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
        let now = match &now {
            TaskState::Ended(e) if requeueable(e) => {
                let since = *w.requeueable_since.entry(task).or_insert_with(Instant::now);
                effective(now, Some(since), forgotten)
            }
            _ => {
                w.requeueable_since.remove(&task);
                now
            }
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
                // A run another process holds (a local `run` training it) is settled once
                // that process lets go: the task stays open until then.
                let mut busy = false;
                for &run in &w.saved.submission.tasks[task] {
                    if w.settled[run] {
                        continue;
                    }
                    match settle(store, &w.saved, task, &w.specs[run], &ending, false)? {
                        Some(outcome) => {
                            w.settled[run] = true;
                            count(summary, &w.specs[run], outcome, events);
                        }
                        None => busy = true,
                    }
                }
                if busy {
                    open += 1;
                    w.states[task] = Some(TaskState::Ended(ending));
                } else {
                    w.states[task] = None;
                }
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
/// failure recorded with Slurm's reason. `None` while another process holds the run's lock
/// (it is training it: its outcome decides); with `wait`, the lock is waited for instead.
fn settle(
    store: &Store,
    saved: &Saved,
    task: usize,
    spec: &RunSpec,
    ending: &Ending,
    wait: bool,
) -> Result<Option<Outcome>, Stop> {
    let err = |e: std::io::Error| Stop::Store(format!("{}: {e}", store.entry_dir(spec).display()));
    let lock = if wait {
        Some(store.lock(spec).map_err(err)?)
    } else {
        store.try_lock(spec).map_err(err)?
    };
    let Some(lock) = lock else {
        return Ok(None);
    };
    Ok(Some(match store.inspect(spec) {
        EntryState::Done(e) => Outcome::Ok {
            val_loss: e.result.val_loss,
        },
        EntryState::Failed(e) => Outcome::Failed {
            reason: reason_of(&e.result),
        },
        // A damaged published record is evidence: never replaced by a failure record.
        EntryState::Corrupt(why) if !saved.submission.retrain_corrupt => Outcome::Failed {
            reason: format!("run {}: published record damaged: {why}", spec.name),
        },
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
            record_failure(store, spec, &reason, &lock).map_err(err)?;
            Outcome::Failed { reason }
        }
    }))
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
            // Nobody watches this array any more: a run another process is training is
            // waited for, then counted as it ended.
            if let Some(outcome) = settle(store, saved, task, &spec, &ending, true)? {
                count(summary, &spec, outcome, &|_| {});
            }
        }
    }
    Ok(())
}

/// Record `spec`, which has no record, as failed with `reason`; the caller holds its lock.
fn record_failure(
    store: &Store,
    spec: &RunSpec,
    reason: &str,
    lock: &crate::store::EntryLock,
) -> std::io::Result<()> {
    let partial = store.start_partial(spec, lock)?;
    let result = RunResult::unfinished(spec, RunStatus::Failed, Some(reason.to_string()));
    write_run(&partial, &result, &[], None)?;
    store.commit(spec, &partial, lock)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_failure_or_preemption_waits_for_slurm_to_requeue() {
        for ending in [Ending::NodeFailure, Ending::Preempted] {
            let now = TaskState::Ended(ending.clone());
            // Just seen: Slurm may still requeue it (the script asks for --requeue).
            assert_eq!(
                effective(now.clone(), Some(Instant::now()), false),
                TaskState::Pending
            );
            // Past the grace, or forgotten by Slurm: it ended.
            let long_ago = Instant::now() - REQUEUE_GRACE - Duration::from_secs(1);
            assert_eq!(effective(now.clone(), Some(long_ago), false), now);
            assert_eq!(effective(now.clone(), Some(Instant::now()), true), now);
        }
        // Other endings are final at once.
        for ending in [Ending::Cancelled, Ending::TimeLimit, Ending::Completed] {
            let now = TaskState::Ended(ending);
            assert_eq!(effective(now.clone(), Some(Instant::now()), false), now);
        }
    }

    /// A task ended without its run's record while another process (a local `run`) holds
    /// the run: nothing is recorded and the run is not called failed until that process lets
    /// go; then its own outcome counts.
    #[test]
    fn a_run_another_process_holds_is_settled_when_it_lets_go() {
        use super::super::submission::{Run, Submission};
        let text = "version: 1\nname: s\nmodel: { context: 8, sizes: [{ layers: 1, d_model: 8, heads: 2 }] }\ntokens: [64]\ntrain: { batch: 4, eval_tokens: 8 }\n";
        let study =
            crate::study::from_bytes(text.as_bytes(), std::path::Path::new("s.yaml")).unwrap();
        let spec = crate::study::plan::plan(&study).unwrap().remove(0);
        let root = std::env::temp_dir().join(format!("scalebook-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = Store::open(&root).unwrap();
        let submission = Submission {
            job_id: Some(7),
            study: "s".into(),
            store: root.clone(),
            threads: 1,
            retry_failed: false,
            retrain_corrupt: true,
            runs: vec![Run {
                key: spec.key.clone(),
                name: spec.name.clone(),
            }],
            tasks: vec![vec![0]],
            finished: false,
        };
        let saved = Saved::create(&store, submission, &[&spec]).unwrap();
        let held = store.lock(&spec).unwrap();
        let ending = Ending::Failed { code: 1, signal: 0 };
        assert!(
            settle(&store, &saved, 0, &spec, &ending, false)
                .unwrap()
                .is_none()
        );
        assert!(matches!(store.inspect(&spec), EntryState::Missing));
        drop(held);
        match settle(&store, &saved, 0, &spec, &ending, false).unwrap() {
            Some(Outcome::Failed { reason }) => {
                assert!(reason.contains("Slurm task 7_0"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(store.inspect(&spec), EntryState::Failed(_)));
        // A damaged published record (a submission that must not retrain it) stays as it is.
        let lock = store.lock(&spec).unwrap();
        let partial = store.start_partial(&spec, &lock).unwrap();
        std::fs::write(partial.join("result.json"), "{ cut").unwrap();
        store.commit(&spec, &partial, &lock).unwrap();
        drop(lock);
        let mut published = saved.clone();
        published.submission.retrain_corrupt = false;
        match settle(&store, &published, 0, &spec, &ending, false).unwrap() {
            Some(Outcome::Failed { reason }) => {
                assert!(reason.contains("published record damaged"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            std::fs::read_to_string(store.entry_dir(&spec).join("result.json")).unwrap(),
            "{ cut"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
