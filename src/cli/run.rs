//! `scalebook run STUDY`: the options of a whole study run — where its runs train, how
//! many at once, which store and book — and its exit code. The sequence itself (train every
//! run the store lacks, collect, fit, train the final run, write the chapter) is
//! [`crate::pipeline::study_run`]; this file shows its progress.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::producer::{ExecutorKind, ProducerArg};
use super::store_arg::StoreArg;
use super::{Failure, exit, load_study};
use crate::exec::local::Local;
use crate::exec::mock::Mock;
use crate::exec::scheduler::{Event, Options, Outcome};
use crate::exec::slurm::Stop;
use crate::pipeline::study_run::{Backend, Progress, Stopped, StudyRun, planned};
use crate::store::Store;
use crate::study::units::format_duration;
use crate::study::{RunSpec, Study};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The study file (YAML).
    pub study: PathBuf,
    #[command(flatten)]
    pub store: StoreArg,
    /// Runs trained at once [default: cores ÷ threads-per-job]
    #[arg(long, value_parser = super::parse_jobs)]
    pub jobs: Option<usize>,
    /// Threads per run [default: cores ÷ jobs, or 1 when neither is given]
    #[arg(long, value_parser = super::parse_threads)]
    pub threads_per_job: Option<usize>,
    /// External trainers: accelerators to train on, one run on each at a time
    /// (`CUDA_VISIBLE_DEVICES` and `{device}` of its command), e.g. `0,1,2,3`; sets --jobs
    #[arg(long, value_parser = super::parse_devices, value_name = "IDS")]
    pub devices: Option<super::Devices>,
    /// Train every run even if some fail, then exit 3 naming them (the default).
    #[arg(long, conflicts_with = "fail_fast")]
    pub keep_going: bool,
    /// Start no new run after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Train again runs recorded as diverged or failed.
    #[arg(long)]
    pub retry_failed: bool,
    #[command(flatten)]
    pub producer: ProducerArg,
    #[command(flatten)]
    pub book: super::report::BookArg,
    /// Train and fit only; do not write the book chapter.
    #[arg(long)]
    pub no_report: bool,
    #[command(flatten)]
    pub slurm: super::slurm_args::SlurmArgs,
}

/// Jobs × threads: fill the cores; small models train best one thread each. With
/// `--devices`, one job per device.
fn parallelism(args: &Args) -> (usize, usize) {
    let cores = crate::sys::default_threads();
    let jobs = args.devices.as_ref().map(|d| d.0.len()).or(args.jobs);
    match (jobs, args.threads_per_job) {
        (Some(j), Some(t)) => (j.max(1), t.max(1)),
        (Some(j), None) => (j.max(1), (cores / j.max(1)).max(1)),
        (None, Some(t)) => ((cores / t.max(1)).max(1), t.max(1)),
        (None, None) => (cores, 1),
    }
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    let study = args.producer.apply(load_study(&args.study)?)?;
    devices_apply(args, &study)?;
    if args.slurm.any() && args.producer.executor != ExecutorKind::Slurm {
        return Err(Failure::new(
            exit::USAGE,
            "--dry-run and the --slurm-… options apply to `--executor slurm`",
        ));
    }
    let (mut specs, own) = planned(&study)?;
    let (_, published) = args.store.locate(&study);
    let store = args.store.open(&study)?;
    let (jobs, threads) = parallelism(args);
    let options = Options {
        jobs,
        fail_fast: args.fail_fast,
        retry_failed: args.retry_failed,
        retrain_corrupt: !published,
    };
    let backend = backend(args, &study, &specs, &store, threads)?;
    if args.slurm.dry_run
        && let Backend::Slurm(slurm) = &backend
    {
        let script = slurm
            .dry_run(&study.name, &store, &specs, options)
            .map_err(|stop| match stop {
                Stop::Unavailable(why) | Stop::Store(why) => Failure::new(exit::USAGE, why),
                Stop::Detached(_) => Failure::new(exit::INTERNAL, "detached during a dry run"),
            })?;
        print!("{script}");
        // Runs the sweep decides are submitted after it, as a second array.
        let transfer = crate::pipeline::transfer::resolve(&study, &store, &specs[..own])
            .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
        if let Some(line) = crate::pipeline::transfer::waiting_line(&study, &transfer) {
            println!("# then, in a second array: {line}");
        }
        return Ok(());
    }
    let how = match &backend {
        Backend::Slurm(s) => format!("slurm executor, {} CPU(s) per task", s.threads),
        b => format!("{} executor, {jobs} job(s) × {threads} thread(s)", b.name()),
    };
    let display = Display::default();
    let study_run = StudyRun {
        study: &study,
        store: &store,
        backend,
        options,
        how,
        book: (!args.no_report).then_some(args.book.book.as_path()),
        progress: &display,
    };
    let outcome = study_run
        .run(&mut specs, own, started)
        .map_err(|stopped| stopped_failure(stopped, store.root()))?;
    if outcome.failed.is_empty() {
        return match &outcome.rendered {
            Some(r) => super::report::finish(&study, r),
            None => Ok(()),
        };
    }
    if let Some(r) = &outcome.rendered {
        // The failed runs decide the exit code; the checks are still printed.
        let _ = super::report::finish(&study, r);
    }
    let mut lines: Vec<String> = outcome
        .failed
        .iter()
        .map(|(name, reason)| format!("failed: {name}: {reason}"))
        .collect();
    lines.push(format!(
        "{} of {} runs diverged or failed; `--retry-failed` trains them again",
        outcome.failed.len(),
        outcome.planned,
    ));
    Err(Failure {
        code: exit::RUNS_FAILED,
        lines,
    })
}

/// The exit code and lines for a study run that stopped early.
fn stopped_failure(stopped: Stopped, store: &std::path::Path) -> Failure {
    match stopped {
        Stopped::Unavailable(why) => Failure::new(exit::USAGE, why),
        Stopped::Store(lines) => Failure {
            code: exit::INTERNAL,
            lines,
        },
        Stopped::Detached(jobs) => Failure::new(
            exit::INTERRUPTED,
            format!("left Slurm job(s) {jobs:?} running; `scalebook run` attaches to them again"),
        ),
        Stopped::Damaged(entries) => damaged(store, &entries),
        Stopped::Step(e) => e.into(),
    }
}

/// `--devices` go to an external trainer, one run per device: refuse them elsewhere, and
/// a `--jobs` that disagrees.
fn devices_apply(args: &Args, study: &Study) -> Result<(), Failure> {
    let Some(super::Devices(devices)) = &args.devices else {
        return Ok(());
    };
    if args.producer.executor == ExecutorKind::Slurm {
        return Err(Failure::new(
            exit::USAGE,
            "--devices applies to the local executor; on Slurm, request GPUs per task with \
             execution.slurm.gres (or --slurm-gres gpu:1)",
        ));
    }
    if study.training().is_none_or(|t| t.external.is_none()) {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "{}: --devices applies to a study whose `trainer:` is an external command",
                study.path.display()
            ),
        ));
    }
    match args.jobs {
        Some(jobs) if jobs != devices.len() => Err(Failure::new(
            exit::USAGE,
            format!(
                "--jobs {jobs} with --devices {}: one run trains on each device, so jobs = devices",
                devices.join(",")
            ),
        )),
        _ => Ok(()),
    }
}

/// The backend `--executor` names.
fn backend(
    args: &Args,
    study: &Study,
    specs: &[RunSpec],
    store: &Store,
    threads: usize,
) -> Result<Backend, Failure> {
    if args.producer.executor == ExecutorKind::Slurm {
        let slurm = args
            .slurm
            .executor(study, specs, store, args.jobs, args.threads_per_job)?;
        return Ok(Backend::Slurm(Box::new(slurm)));
    }
    Ok(Backend::Each(match args.producer.mock_law()? {
        None => Box::new(
            Local::new(super::current_exe()?, threads)
                .with_devices(args.devices.clone().map(|d| d.0).unwrap_or_default())
                .with_trunks(store.trunks_dir()),
        ),
        Some(law) => Box::new(Mock { law }),
    }))
}

/// Published records that do not read back: evidence is never silently replaced.
fn damaged(store: &std::path::Path, damaged: &[(String, String)]) -> Failure {
    let mut lines: Vec<String> = damaged
        .iter()
        .map(|(entry, why)| {
            format!(
                "{}: published record damaged: {why}",
                store.join("runs").join(entry).display()
            )
        })
        .collect();
    lines.push(format!(
        "{} published record(s) damaged and not retrained: restore them from version control \
         (`git checkout -- {}`), or delete a record's folder to train it again",
        damaged.len(),
        store.display()
    ));
    Failure {
        code: exit::VERIFY_FAILED,
        lines,
    }
}

/// Progress: bars on a terminal (overall + one line per active run), log lines otherwise;
/// one [`Sweep`] display at a time.
#[derive(Default)]
struct Display {
    current: Mutex<Option<Sweep>>,
}

impl Progress for Display {
    fn begin(&self, runs: usize) {
        *self.current.lock().expect("display lock") = Some(Sweep::new(runs));
    }

    fn event(&self, event: Event) {
        if let Some(sweep) = self.current.lock().expect("display lock").as_ref() {
            sweep.show(event);
        }
    }

    fn end(&self) {
        if let Some(sweep) = self.current.lock().expect("display lock").take() {
            sweep.finish();
        }
    }
}

/// The display of one sweep.
struct Sweep {
    bars: Option<Bars>,
    total: usize,
    done: Mutex<usize>,
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    active: Mutex<HashMap<String, ProgressBar>>,
}

impl Sweep {
    fn new(total: usize) -> Self {
        let bars = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::new();
            let overall = multi.add(ProgressBar::new(total as u64));
            overall.set_style(
                ProgressStyle::with_template(
                    "runs [{bar:30}] {pos}/{len} ({elapsed} elapsed, ETA {eta})",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            overall.enable_steady_tick(Duration::from_millis(250));
            Bars {
                multi,
                overall,
                active: Mutex::new(HashMap::new()),
            }
        });
        Sweep {
            bars,
            total,
            done: Mutex::new(0),
        }
    }

    fn show(&self, event: Event) {
        match (&self.bars, event) {
            (_, Event::Cached { count }) => {
                *self.done.lock().expect("display lock") += count;
                match &self.bars {
                    Some(b) => b.overall.inc(count as u64),
                    None => eprintln!("{count} of {} runs already in the store", self.total),
                }
            }
            (bars, Event::Corrupt { name, reason }) => {
                let line = format!("warning: {name}: {reason}; retraining it");
                match bars {
                    Some(b) => b.multi.println(line).unwrap_or(()),
                    None => eprintln!("{line}"),
                }
            }
            (Some(b), Event::Started { name, steps }) => {
                let bar = b.multi.add(ProgressBar::new(steps));
                bar.set_style(
                    ProgressStyle::with_template("  {prefix:24} [{bar:20}] {pos}/{len} {msg}")
                        .expect("static template")
                        .progress_chars("=> "),
                );
                bar.set_prefix(name.clone());
                b.active.lock().expect("display lock").insert(name, bar);
            }
            (None, Event::Started { name, steps }) => eprintln!("start {name} ({steps} steps)"),
            (Some(b), Event::Step { name, step, loss }) => {
                if let Some(bar) = b.active.lock().expect("display lock").get(&name) {
                    bar.set_position(step);
                    bar.set_message(format!("loss {loss:.4}"));
                }
            }
            (None, Event::Step { .. }) => {}
            (
                bars,
                Event::Finished {
                    name,
                    outcome,
                    seconds,
                },
            ) => {
                let done = {
                    let mut d = self.done.lock().expect("display lock");
                    *d += 1;
                    *d
                };
                let what = match outcome {
                    Outcome::Ok { val_loss } => format!(
                        "ok, val loss {}",
                        val_loss.map_or("n/a".to_string(), |v| format!("{v:.4}"))
                    ),
                    Outcome::Cached => "finished by another process".to_string(),
                    Outcome::Failed { reason } => format!("FAILED: {reason}"),
                };
                let line = format!(
                    "[{done}/{}] {name}: {what} ({})",
                    self.total,
                    format_duration(seconds)
                );
                match bars {
                    Some(b) => {
                        if let Some(bar) = b.active.lock().expect("display lock").remove(&name) {
                            bar.finish_and_clear();
                            b.multi.remove(&bar);
                        }
                        b.overall.inc(1);
                        let _ = b.multi.println(line);
                    }
                    None => eprintln!("{line}"),
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bars {
            b.overall.finish_and_clear();
        }
    }
}
