//! The Slurm executor: the runs the store lacks go to the cluster as one job array, each
//! task a `scalebook slurm-task` that trains its runs (one, or several short ones:
//! [`bundle`]) exactly as the local executor does
//! (the entry lock, a partial folder, an atomic publish), so the store is the only state
//! the cluster and this machine share. The watcher polls `scontrol` (never `sbatch
//! --wait`), reports progress from the store and the tasks' logs, records why a task that
//! left no record ended (time limit, out of memory, cancelled, node failure, its exit
//! code), and keeps the array in the store so a second `run` attaches instead of
//! submitting again.

pub mod bundle;
pub mod cluster;
pub mod script;
pub mod submission;
mod watch;

use std::collections::HashMap;
use std::path::PathBuf;

use cluster::TaskState;
use submission::{Run, Saved, Submission};

use super::scheduler::{Event, Options, Summary, reason_of, triage};
use crate::store::{EntryState, Store};
use crate::study::RunSpec;
use crate::study::execution::SlurmOptions;

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
    /// default, and which short runs share a task).
    pub estimates: HashMap<String, f64>,
    /// Each planned run's expected peak memory in bytes, by key, when known (the memory
    /// request's default).
    pub memory: HashMap<String, u64>,
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
    /// The batch script for `tasks` (indices into `specs`), whose submission lives in `dir`;
    /// `Err` names an option it cannot carry safely.
    pub fn script(
        &self,
        study: &str,
        dir: &std::path::Path,
        specs: &[&RunSpec],
        tasks: &[Vec<usize>],
    ) -> Result<String, String> {
        script::render(&script::Input {
            study,
            runs: specs.len(),
            dir,
            tasks: tasks.len(),
            throttle: self.throttle,
            cpus: self.threads,
            time: self
                .options
                .time
                .clone()
                .or_else(|| self.default_time(specs, tasks)),
            mem: self.options.mem.clone().or_else(|| self.default_mem(specs)),
            options: &self.options,
            binary: &self.binary,
        })
    }

    /// Twice the largest expected peak memory, in MiB; none unless every run's is known.
    fn default_mem(&self, specs: &[&RunSpec]) -> Option<String> {
        let mut most = 0u64;
        for spec in specs {
            most = most.max(*self.memory.get(&spec.key)?);
        }
        Some(format!("{}M", (2 * most).div_ceil(1 << 20).max(256)))
    }

    /// Each run's estimated seconds on a task's CPUs (`NaN` when unknown).
    fn seconds(&self, specs: &[&RunSpec]) -> Vec<f64> {
        specs
            .iter()
            .map(|s| {
                self.estimates.get(&s.key).copied().unwrap_or(f64::NAN) / self.threads.max(1) as f64
            })
            .collect()
    }

    /// Three times the longest task's estimate, at least 10 minutes, in whole minutes;
    /// none when a run's time is unknown (an external trainer before its first run).
    fn default_time(&self, specs: &[&RunSpec], tasks: &[Vec<usize>]) -> Option<String> {
        let seconds = self.seconds(specs);
        let mut longest: f64 = 0.0;
        for task in tasks {
            let total: f64 = task.iter().map(|&i| seconds[i]).sum();
            if !total.is_finite() {
                return None;
            }
            longest = longest.max(total);
        }
        Some(((3.0 * longest / 60.0).ceil() as u64).max(10).to_string())
    }

    /// Which runs each task trains: short runs share tasks (see [`bundle`]), and a shared
    /// trunk's branches are one task, in the order they leave the trunk.
    fn tasks(&self, specs: &[&RunSpec]) -> Vec<Vec<usize>> {
        let cpus = cluster::partition_cpus(self.options.partition.as_deref());
        let groups = crate::study::branches::by_trunk(specs);
        let mut slots = cpus.map_or(groups.len(), |c| (c / self.threads.max(1)).max(1));
        if let Some(k) = self.throttle {
            slots = slots.min(k);
        }
        let index: HashMap<&str, usize> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key.as_str(), i))
            .collect();
        let seconds = self.seconds(specs);
        let group_seconds: Vec<f64> = groups
            .iter()
            .map(|g| crate::study::branches::group_seconds(g, |s| seconds[index[s.key.as_str()]]))
            .collect();
        bundle::bundle(&group_seconds, slots)
            .into_iter()
            .map(|task| {
                task.into_iter()
                    .flat_map(|g| groups[g].iter().map(|s| index[s.key.as_str()]))
                    .collect()
            })
            .collect()
    }

    /// The runs `run_all` would submit, as the batch script (nothing is submitted; Slurm
    /// need not be installed).
    pub fn dry_run(
        &self,
        study: &str,
        store: &Store,
        specs: &[RunSpec],
        options: Options,
    ) -> Result<String, Stop> {
        let (_, queue) = triage(store, specs, options, &|_| {});
        let root = std::path::absolute(store.root()).unwrap_or_else(|_| store.root().into());
        let dir = root.join("slurm").join("<submission>");
        if queue.is_empty() {
            return Ok("# nothing to submit: every planned run is in the store\n".into());
        }
        let tasks = self.tasks(&queue);
        let mut text = self
            .script(study, &dir, &queue, &tasks)
            .map_err(Stop::Unavailable)?;
        for (i, task) in tasks.iter().enumerate() {
            let names: Vec<&str> = task.iter().map(|&r| queue[r].name.as_str()).collect();
            text.push_str(&format!("# task {i}: {}\n", names.join(" ")));
        }
        Ok(text)
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
                .flat_map(|s| s.submission.runs.iter().map(|r| r.key.as_str()))
                .collect();
            // An array that ended while nobody watched may have finished (or, settled just
            // now, failed) some of the queue.
            let mut fresh: Vec<&RunSpec> = Vec::new();
            for spec in queue
                .into_iter()
                .filter(|s| !covered.contains(&s.key.as_str()))
            {
                match store.inspect(spec) {
                    EntryState::Done(_) => summary.cached += 1,
                    EntryState::Failed(e) if !options.retry_failed => summary
                        .failed
                        .push((spec.name.clone(), reason_of(&e.result))),
                    _ => fresh.push(spec),
                }
            }
            if !fresh.is_empty() {
                watched.push(self.submit(study, store, &fresh, options)?);
            }
            watched
        };
        let todo: Vec<&str> = queue_keys.iter().map(String::as_str).collect();
        watch::watch(store, watched, &todo, &mut summary, events)?;
        Ok(summary)
    }

    /// The store's arrays still queued or running; arrays that have ended are settled
    /// (a failure recorded for each task that left no record) and forgotten.
    fn attach(&self, store: &Store, summary: &mut Summary) -> Result<Vec<Saved>, Stop> {
        let mut alive = Vec::new();
        for mut saved in Saved::all(store.root()) {
            let job = match saved.submission.job_id {
                Some(job) => job,
                // Its submitter died before saving sbatch's answer (we hold the submission
                // lock): an array of its name is that submission, else none was made.
                None => {
                    let dir = std::path::absolute(&saved.dir).unwrap_or(saved.dir.clone());
                    let name = script::job_name(&saved.submission.study, &dir);
                    let Some(job) = cluster::job_named(&name) else {
                        saved.remove();
                        continue;
                    };
                    saved.submission.job_id = Some(job);
                    saved
                        .save()
                        .map_err(|e| Stop::Store(format!("{}: {e}", saved.dir.display())))?;
                    job
                }
            };
            let states = cluster::tasks(job).map_err(Stop::Unavailable)?;
            // A task lost with its node or preempted is about to be requeued: still live.
            let live = states.as_ref().is_some_and(|tasks| {
                tasks.iter().any(|(_, s)| {
                    !matches!(
                        watch::effective(s.clone(), None, false),
                        TaskState::Ended(_)
                    )
                })
            });
            if live {
                eprintln!(
                    "attaching to Slurm job {job} ({} runs) instead of submitting again",
                    saved.submission.runs.len()
                );
                alive.push(saved);
            } else {
                let mut ignore = Summary::default();
                watch::settle_all(store, &saved, states, &mut ignore)?;
                summary.store_errors.extend(ignore.store_errors);
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
        let tasks = self.tasks(specs);
        let submission = Submission {
            job_id: None,
            study: study.to_string(),
            store: std::path::absolute(store.root()).unwrap_or_else(|_| store.root().into()),
            threads: self.threads,
            retry_failed: options.retry_failed,
            retrain_corrupt: options.retrain_corrupt,
            runs: specs
                .iter()
                .map(|s| Run {
                    key: s.key.clone(),
                    name: s.name.clone(),
                })
                .collect(),
            tasks: tasks.clone(),
            finished: false,
        };
        let io = |e: std::io::Error| Stop::Store(format!("{}: {e}", store.root().display()));
        let mut saved = Saved::create(store, submission, specs).map_err(io)?;
        let script = saved.dir.join("submit.sh");
        let dir = std::path::absolute(&saved.dir).unwrap_or(saved.dir.clone());
        let text = match self.script(study, &dir, specs, &tasks) {
            Ok(text) => text,
            Err(why) => {
                saved.remove();
                return Err(Stop::Unavailable(why));
            }
        };
        crate::files::atomic::write_atomic(&script, text.as_bytes()).map_err(io)?;
        match cluster::submit(&script) {
            Ok(job) => {
                saved.submission.job_id = Some(job);
                saved.save().map_err(io)?;
                eprintln!(
                    "submitted Slurm job {job}: {} runs as an array of {} task(s){}",
                    specs.len(),
                    tasks.len(),
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
