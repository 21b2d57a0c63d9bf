//! The Slurm executor: the runs the store lacks go to the cluster as one job array, each
//! task a `scalebook slurm-task` that trains its run exactly as the local executor does
//! (the entry lock, a partial folder, an atomic publish), so the store is the only state
//! the cluster and this machine share. The watcher polls `scontrol` (never `sbatch
//! --wait`), reports progress from the store and the tasks' logs, records why a task that
//! left no record ended (time limit, out of memory, cancelled, node failure, its exit
//! code), and keeps the array in the store so a second `run` attaches instead of
//! submitting again.

pub mod cluster;
pub mod script;
pub mod submission;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster::{Ending, TaskState};
use submission::{Saved, Submission, Task};

use super::scheduler::{Event, Options, Outcome, Summary, reason_of, triage};
use super::tail::StepTail;
use crate::record::{RunResult, RunStatus, write_run};
use crate::store::{EntryState, Store};
use crate::study::RunSpec;
use crate::study::execution::SlurmOptions;

/// How often the watcher asks Slurm (at most once a second, as schedulers ask of clients).
const POLL: Duration = Duration::from_secs(1);

/// Consecutive failed queries of Slurm before the watcher gives up (a minute of polls).
const MAX_QUERY_FAILURES: u32 = 60;

/// Set by SIGINT or SIGTERM while the watcher runs.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn interrupted(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// The Slurm executor's settings.
#[derive(Debug, Clone)]
pub struct Slurm {
    pub options: SlurmOptions,
    /// The scalebook binary the tasks run.
    pub binary: PathBuf,
    /// CPUs per task, the threads its run trains with.
    pub threads: usize,
    /// Tasks running at once (`%K`), when limited.
    pub throttle: Option<usize>,
    /// Each planned run's estimated seconds at one thread, by key (the time limit's
    /// default).
    pub estimates: HashMap<String, f64>,
}

/// Why the Slurm executor stopped.
#[derive(Debug)]
pub enum Stop {
    /// Slurm is absent or refused the submission (exit 2).
    Unavailable(String),
    /// The store could not record a result (exit 1).
    Store(String),
    /// Interrupted, and the user chose to leave the array running.
    Detached(Vec<u64>),
}

impl Slurm {
    /// The batch script for `count` tasks whose submission lives in `dir`.
    pub fn script(&self, study: &str, dir: &std::path::Path, specs: &[&RunSpec]) -> String {
        script::render(&script::Input {
            study,
            dir,
            tasks: specs.len(),
            throttle: self.throttle,
            cpus: self.threads,
            time: self
                .options
                .time
                .clone()
                .or_else(|| self.default_time(specs)),
            options: &self.options,
            binary: &self.binary,
        })
    }

    /// Three times the longest estimated run, at least 10 minutes, in whole minutes; none
    /// when a run's time is unknown (an external trainer before its first run).
    fn default_time(&self, specs: &[&RunSpec]) -> Option<String> {
        let mut longest: f64 = 0.0;
        for spec in specs {
            let seconds = *self.estimates.get(&spec.key)?;
            if !seconds.is_finite() {
                return None;
            }
            longest = longest.max(seconds / self.threads.max(1) as f64);
        }
        Some(((3.0 * longest / 60.0).ceil() as u64).max(10).to_string())
    }

    /// The runs `run_all` would submit, as the batch script (nothing is submitted; Slurm
    /// need not be installed).
    pub fn dry_run(
        &self,
        study: &str,
        store: &Store,
        specs: &[RunSpec],
        options: Options,
    ) -> String {
        let (_, queue) = triage(store, specs, options, &|_| {});
        let dir = store.root().join("slurm").join("<submission>");
        if queue.is_empty() {
            return "# nothing to submit: every planned run is in the store\n".into();
        }
        self.script(study, &dir, &queue)
    }

    /// Bring every planned run to a recorded state on the cluster: attach to the arrays
    /// already training some of them, submit one array for the rest, watch until every
    /// task has ended.
    pub fn run_all(
        &self,
        study: &str,
        store: &Store,
        specs: &[RunSpec],
        options: Options,
        events: &(dyn Fn(Event) + Sync),
    ) -> Result<Summary, Stop> {
        let (mut summary, queue) = triage(store, specs, options, events);
        if queue.is_empty() {
            return Ok(summary);
        }
        let queue_keys: Vec<String> = queue.iter().map(|s| s.key.clone()).collect();
        for program in ["sbatch", "scontrol", "scancel"] {
            if !cluster::on_path(program) {
                return Err(Stop::Unavailable(format!(
                    "`{program}` is not on PATH: `--executor slurm` needs the Slurm client \
                     commands (`--dry-run` prints the batch script without them)"
                )));
            }
        }
        let watched = {
            let _lock = store.lock_named("slurm-submit").map_err(|e| {
                Stop::Store(format!("{}: cannot lock: {e}", store.root().display()))
            })?;
            let mut watched = self.attach(store, &mut summary)?;
            let covered: Vec<&str> = watched
                .iter()
                .flat_map(|s| s.submission.tasks.iter().map(|t| t.key.as_str()))
                .collect();
            let fresh: Vec<&RunSpec> = queue
                .into_iter()
                .filter(|s| !covered.contains(&s.key.as_str()))
                .collect();
            if !fresh.is_empty() {
                watched.push(self.submit(study, store, &fresh, options)?);
            }
            watched
        };
        let todo: Vec<&str> = queue_keys.iter().map(String::as_str).collect();
        watch(store, watched, &todo, &mut summary, events)?;
        Ok(summary)
    }

    /// The store's arrays still queued or running; arrays that have ended are settled
    /// (a failure recorded for each task that left no record) and forgotten.
    fn attach(&self, store: &Store, summary: &mut Summary) -> Result<Vec<Saved>, Stop> {
        let mut alive = Vec::new();
        for saved in Saved::all(store.root()) {
            let Some(job) = saved.submission.job_id else {
                // Its submitter died before sbatch answered (we hold the submission lock).
                saved.remove();
                continue;
            };
            let states = cluster::tasks(job).map_err(Stop::Unavailable)?;
            let live = states
                .as_ref()
                .is_some_and(|tasks| tasks.iter().any(|(_, s)| !matches!(s, TaskState::Ended(_))));
            if live {
                eprintln!(
                    "attaching to Slurm job {job} ({} tasks) instead of submitting again",
                    saved.submission.tasks.len()
                );
                alive.push(saved);
            } else {
                let mut ignore = Summary::default();
                settle_all(store, &saved, states, &mut ignore)?;
                summary.store_errors.extend(ignore.store_errors);
                let mut saved = saved;
                saved
                    .finish()
                    .map_err(|e| Stop::Store(format!("{}: {e}", saved.dir.display())))?;
            }
        }
        Ok(alive)
    }

    fn submit(
        &self,
        study: &str,
        store: &Store,
        specs: &[&RunSpec],
        options: Options,
    ) -> Result<Saved, Stop> {
        let submission = Submission {
            job_id: None,
            study: study.to_string(),
            store: std::path::absolute(store.root()).unwrap_or_else(|_| store.root().into()),
            threads: self.threads,
            retry_failed: options.retry_failed,
            retrain_corrupt: options.retrain_corrupt,
            tasks: specs
                .iter()
                .map(|s| Task {
                    key: s.key.clone(),
                    name: s.name.clone(),
                })
                .collect(),
            finished: false,
        };
        let io = |e: std::io::Error| Stop::Store(format!("{}: {e}", store.root().display()));
        let mut saved = Saved::create(store, submission, specs).map_err(io)?;
        let script = saved.dir.join("submit.sh");
        let dir = std::path::absolute(&saved.dir).unwrap_or(saved.dir.clone());
        crate::store::atomic::write_atomic(&script, self.script(study, &dir, specs).as_bytes())
            .map_err(io)?;
        match cluster::submit(&script) {
            Ok(job) => {
                saved.submission.job_id = Some(job);
                saved.save().map_err(io)?;
                eprintln!(
                    "submitted Slurm job {job}: {} runs as one array{}",
                    specs.len(),
                    self.throttle
                        .map(|k| format!(", {k} at a time"))
                        .unwrap_or_default()
                );
                Ok(saved)
            }
            Err(e) => {
                saved.remove();
                Err(Stop::Unavailable(format!("cannot submit to Slurm: {e}")))
            }
        }
    }
}

/// One watched array.
struct Watched {
    saved: Saved,
    job: u64,
    specs: Vec<RunSpec>,
    /// Each task's last seen state; `None` once settled.
    states: Vec<Option<TaskState>>,
    tails: HashMap<usize, StepTail>,
}

/// Follow the arrays until each task that trains one of `todo` (keys) has ended.
fn watch(
    store: &Store,
    saved: Vec<Saved>,
    todo: &[&str],
    summary: &mut Summary,
    events: &(dyn Fn(Event) + Sync),
) -> Result<(), Stop> {
    let mut watched = Vec::new();
    for s in saved {
        let specs = (0..s.submission.tasks.len())
            .map(|i| s.spec(i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Stop::Store)?;
        // Tasks of an attached array whose runs this study does not wait for (finished, or
        // another study's) are not followed.
        let states = specs
            .iter()
            .map(|spec| {
                todo.contains(&spec.key.as_str())
                    .then_some(TaskState::Pending)
            })
            .collect();
        watched.push(Watched {
            job: s.submission.job_id.unwrap_or(0),
            saved: s,
            specs,
            states,
            tails: HashMap::new(),
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
            let forgotten = states.is_none();
            let states: HashMap<usize, TaskState> = states
                .or_else(|| cluster::accounting(w.job))
                .unwrap_or_default()
                .into_iter()
                .collect();
            for i in 0..w.specs.len() {
                let Some(last) = w.states[i].clone() else {
                    continue;
                };
                let now = states.get(&i).cloned().unwrap_or(if forgotten {
                    TaskState::Ended(Ending::Other(
                        "unknown (the job left Slurm's memory)".into(),
                    ))
                } else {
                    last.clone()
                });
                if now == TaskState::Running && last != TaskState::Running {
                    events(Event::Started {
                        name: w.specs[i].name.clone(),
                        steps: w.specs[i].steps,
                    });
                    if let Some(log) = w.saved.log(i) {
                        w.tails.insert(i, StepTail::new(log));
                    }
                }
                if let Some(tail) = w.tails.get_mut(&i) {
                    let name = &w.specs[i].name;
                    tail.read(&mut |step, loss| {
                        events(Event::Step {
                            name: name.clone(),
                            step,
                            loss,
                        })
                    });
                }
                match now {
                    TaskState::Ended(ending) => {
                        w.tails.remove(&i);
                        let outcome = settle(store, &w.saved, i, &w.specs[i], &ending)?;
                        count(summary, &w.specs[i], outcome, events);
                        w.states[i] = None;
                    }
                    state => {
                        open += 1;
                        w.states[i] = Some(state);
                    }
                }
            }
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
    index: usize,
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
                .log(index)
                .and_then(|log| crate::external::process::last_log_line(&log))
                .filter(|_| *ending == Ending::Completed || matches!(ending, Ending::Failed { .. }))
                .map(|l| format!(": {l}"))
                .unwrap_or_default();
            let reason = format!(
                "run {}: Slurm task {job}_{index}: {}{said}",
                spec.name,
                ending.reason()
            );
            record_failure(store, spec, &reason)?;
            Ok(Outcome::Failed { reason })
        }
    }
}

/// Settle every task of an array that ended while nobody watched.
fn settle_all(
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
    for index in 0..saved.submission.tasks.len() {
        let Ok(spec) = saved.spec(index) else {
            continue;
        };
        let ending = match states.get(&index) {
            Some(TaskState::Ended(e)) => e.clone(),
            _ => Ending::Other("unknown (the job left Slurm's memory)".into()),
        };
        count(
            summary,
            &spec,
            settle(store, saved, index, &spec, &ending)?,
            &|_| {},
        );
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
