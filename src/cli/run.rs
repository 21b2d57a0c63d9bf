//! `scalebook run STUDY`: plan the study, train every run the store does not already hold
//! (in parallel, largest first, each recorded the moment it finishes), collect the results
//! into `STORE/studies/<name>/{runs,curves}.parquet`, fit the study's laws (`fits.json`),
//! train the final compute-optimal run and its baseline, and write the book chapter.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::producer::{ExecutorKind, ProducerArg};
use super::store_arg::StoreArg;
use super::{Failure, MOCK_LABEL, exit, load_study};
use crate::exec::Executor;
use crate::exec::local::Local;
use crate::exec::mock::Mock;
use crate::exec::scheduler::{self, Event, Options, Outcome};
use crate::exec::slurm::{Slurm, Stop};
use crate::fit::suite::FitReport;
use crate::store::{EntryState, Store, collect};
use crate::study::plan::{add_entropy, plan};
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
    let mut specs = plan(&study).map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    // `train.compare`: the same points trained independently, in the same pass.
    let comparison = crate::study::branches::comparison(&study);
    let own = specs.len();
    if let Some(c) = &comparison {
        specs.extend(plan(c).map_err(|e| Failure::new(exit::USAGE, e.to_string()))?);
    }
    let (store_path, published) = args.store.locate(&study);
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
        return Ok(());
    }
    let trainer = Trainer {
        store: &store,
        study: &study,
        backend,
        options,
    };
    let summary = trainer.train(&mut specs)?;
    let compared = specs.split_off(own);
    let collected = collect::export(&store, &study.name, &specs).and_then(|c| match &comparison {
        Some(other) => collect::export(&store, &other.name, &compared),
        None => Ok(c),
    });
    if !summary.store_errors.is_empty() {
        let mut lines = summary.store_errors.clone();
        lines.push(format!(
            "{}: the run store could not record results; finished runs are intact",
            store_path.display()
        ));
        return Err(Failure {
            code: exit::INTERNAL,
            lines,
        });
    }
    collected.map_err(|e| Failure::new(exit::INTERNAL, e.to_string()))?;
    if !summary.damaged.is_empty() {
        return Err(damaged(&store_path, &summary.damaged));
    }
    let how = match &trainer.backend {
        Backend::Slurm(s) => format!("slurm executor, {} CPU(s) per task", s.threads),
        b => format!("{} executor, {jobs} job(s) × {threads} thread(s)", b.name()),
    };
    eprintln!(
        "{}: {}{} runs{} — {} trained, {} cached, {} failed ({how}); results in {}",
        study.name,
        if study.is_mock() { MOCK_LABEL } else { "" },
        specs.len(),
        if compared.is_empty() {
            String::new()
        } else {
            format!(" and {} independent runs to compare", compared.len())
        },
        summary.trained,
        summary.cached,
        summary.failed.len(),
        store.study_dir(&study.name).join("runs.parquet").display(),
    );
    print_spend(&study, &store, &specs, &compared, started);
    // Fit what finished (a failed run is simply not a point of the fit).
    let fits = fit(&study, &store)?;
    let mut failed = summary.failed.clone();
    let mut planned = specs.len();
    // The method's last step: train the model the law calls compute-optimal, and a baseline.
    if let Some(outcome) = trainer.train_final(&fits)? {
        failed.extend(outcome.failed);
        planned += 2;
    }
    let rendered = if args.no_report {
        None
    } else {
        Some(crate::pipeline::chapter::report_study(
            &study,
            &store,
            &fits,
            &args.book.book,
        )?)
    };
    if failed.is_empty() {
        return match &rendered {
            Some(r) => super::report::finish(&study, r),
            None => Ok(()),
        };
    }
    if let Some(r) = &rendered {
        // The failed runs decide the exit code; the checks are still printed.
        let _ = super::report::finish(&study, r);
    }
    let mut lines: Vec<String> = failed
        .iter()
        .map(|(name, reason)| format!("failed: {name}: {reason}"))
        .collect();
    lines.push(format!(
        "{} of {planned} runs diverged or failed; `--retry-failed` trains them again",
        failed.len(),
    ));
    Err(Failure {
        code: exit::RUNS_FAILED,
        lines,
    })
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

/// What trains the runs: an executor per run on this machine, or the Slurm cluster.
enum Backend {
    Each(Box<dyn Executor>),
    Slurm(Box<Slurm>),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Each(e) => e.name(),
            Backend::Slurm(_) => "slurm",
        }
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

/// This command's wall time and what the study's records cost (and the runs compared with
/// them, with `train.compare`).
fn print_spend(
    study: &Study,
    store: &Store,
    specs: &[RunSpec],
    compared: &[RunSpec],
    started: std::time::Instant,
) {
    let spend = crate::pipeline::spend::spend(store, specs);
    let shared = if spend.independent_cpu_seconds > spend.cpu_seconds * 1.0001 {
        format!(
            ", {:.0} % of the {:.4} they would cost trained one by one",
            100.0 * spend.cpu_seconds / spend.independent_cpu_seconds,
            spend.independent_cpu_seconds / 3600.0
        )
    } else {
        String::new()
    };
    eprintln!(
        "{}: {} in wall time for this command; the study's {} recorded run(s) cost {:.4} \
         CPU-hours of training (run time × threads){shared}",
        study.name,
        format_duration(started.elapsed().as_secs_f64()),
        spend.records,
        spend.cpu_hours(),
    );
    if !compared.is_empty() {
        let other = crate::pipeline::spend::spend(store, compared);
        eprintln!(
            "{}: the {} independent run(s) to compare with cost {:.4} CPU-hours",
            study.name,
            other.records,
            other.cpu_hours()
        );
    }
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

/// Fit the study's laws (none when it names no fits) and say what came out.
fn fit(study: &Study, store: &Store) -> Result<FitReport, Failure> {
    if study.fits.is_empty() {
        return Ok(FitReport::default());
    }
    let input = crate::pipeline::fitting::study_rows(study, store)?;
    let report = crate::pipeline::fitting::fit_rows(study, store, &input, Default::default())?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(c) = &report.chinchilla {
        eprintln!(
            "{}: {}L = {:.4} + {:.4}/N^{:.4} + {:.4}/D^{:.4} over {} runs; fits in {}",
            study.name,
            if study.is_mock() { MOCK_LABEL } else { "" },
            c.e,
            c.a,
            c.alpha,
            c.b,
            c.beta,
            c.points,
            store.study_dir(&study.name).join("fits.json").display()
        );
    }
    Ok(report)
}

/// What trains a study's runs: the store, the executor and the scheduling options.
struct Trainer<'a> {
    store: &'a Store,
    study: &'a Study,
    backend: Backend,
    options: Options,
}

impl Trainer<'_> {
    /// Train `specs` with progress shown, largest first; the data's entropy rate is sampled
    /// only when something will train.
    fn train(&self, specs: &mut [RunSpec]) -> Result<scheduler::Summary, Failure> {
        if specs
            .iter()
            .any(|s| !matches!(self.store.inspect(s), EntryState::Done(_)))
        {
            add_entropy(self.study, specs);
        }
        let display = Display::new(specs.len());
        let events = |event| display.show(event);
        let summary = match &self.backend {
            Backend::Each(executor) => Ok(scheduler::run_all(
                self.store,
                executor.as_ref(),
                specs,
                self.options,
                &events,
            )),
            Backend::Slurm(slurm) => {
                slurm.run_all(&self.study.name, self.store, specs, self.options, &events)
            }
        };
        display.finish();
        summary.map_err(|stop| match stop {
            Stop::Unavailable(why) => Failure::new(exit::USAGE, why),
            Stop::Store(why) => Failure::new(exit::INTERNAL, why),
            Stop::Detached(jobs) => Failure::new(
                exit::INTERRUPTED,
                format!(
                    "left Slurm job(s) {jobs:?} running; `scalebook run` attaches to them again"
                ),
            ),
        })
    }

    /// Train the final run and its baseline when the fits give them.
    fn train_final(&self, fits: &FitReport) -> Result<Option<scheduler::Summary>, Failure> {
        let study = self.study;
        let Some(fp) = crate::pipeline::chapter::plan_final(study, fits)? else {
            use crate::pipeline::final_target::{Decision, decide};
            match decide(study, fits) {
                Decision::Skip(why) => {
                    eprintln!("{}: final run skipped: {why}", study.name);
                }
                _ if study.final_run.is_some() => eprintln!(
                    "warning: {}: no final run: the law named by `final.law` was not fitted (see the warnings)",
                    study.name
                ),
                _ => {}
            }
            return Ok(None);
        };
        let pair = [fp.run.clone(), fp.baseline.clone()];
        let seconds = if fp.run.is_mock() {
            vec![0.0; 2]
        } else {
            crate::pipeline::estimate::estimate(&pair, Some(self.store)).seconds
        };
        let time = |i: usize| {
            seconds
                .get(i)
                .filter(|s| s.is_finite())
                .map_or("unknown time".to_string(), |s| {
                    format!("about {}", format_duration(*s))
                })
        };
        let shape = |s: &RunSpec| {
            let m = &s.identity.model;
            format!(
                "{} layers × d_model {} × {} heads",
                m.layers, m.d_model, m.heads
            )
        };
        eprintln!(
            "{}: final run {} ({}, {} steps, {} at one thread) and baseline {} ({}, {})",
            study.name,
            fp.run.name,
            shape(&fp.run),
            fp.run.steps,
            time(0),
            fp.baseline.name,
            shape(&fp.baseline),
            time(1)
        );
        let outcome = self.train(&mut [fp.run.clone(), fp.baseline.clone()])?;
        if !outcome.store_errors.is_empty() {
            return Err(Failure {
                code: exit::INTERNAL,
                lines: outcome.store_errors,
            });
        }
        if !outcome.damaged.is_empty() {
            return Err(damaged(self.store.root(), &outcome.damaged));
        }
        Ok(Some(outcome))
    }
}

/// Progress: bars on a terminal (overall + one line per active run), log lines otherwise.
struct Display {
    bars: Option<Bars>,
    total: usize,
    done: Mutex<usize>,
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    active: Mutex<HashMap<String, ProgressBar>>,
}

impl Display {
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
        Display {
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
