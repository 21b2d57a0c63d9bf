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

use super::producer::ProducerArg;
use super::store_arg::StoreArg;
use super::{Failure, MOCK_LABEL, exit, load_study};
use crate::exec::Executor;
use crate::exec::local::Local;
use crate::exec::mock::Mock;
use crate::exec::scheduler::{self, Event, Options, Outcome};
use crate::fit::suite::FitReport;
use crate::store::{EntryState, Store, collect};
use crate::study::plan::{add_entropy, plan};
use crate::study::units::format_duration;

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
}

/// Jobs × threads: fill the cores; small models train best one thread each.
fn parallelism(args: &Args) -> (usize, usize) {
    let cores = crate::sys::default_threads();
    match (args.jobs, args.threads_per_job) {
        (Some(j), Some(t)) => (j.max(1), t.max(1)),
        (Some(j), None) => (j.max(1), (cores / j.max(1)).max(1)),
        (None, Some(t)) => ((cores / t.max(1)).max(1), t.max(1)),
        (None, None) => (cores, 1),
    }
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let study = args.producer.apply(load_study(&args.study)?)?;
    let mut specs = plan(&study).map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    let store_path = args.store.path();
    let store = Store::open(&store_path).map_err(|e| {
        Failure::new(
            exit::INTERNAL,
            format!("{}: cannot use the run store: {e}", store_path.display()),
        )
    })?;
    // The entropy rate is sampled only when something will train.
    if specs
        .iter()
        .any(|s| !matches!(store.inspect(s), EntryState::Done(_)))
    {
        add_entropy(&study, &mut specs);
    }
    let (jobs, threads) = parallelism(args);
    let executor: Box<dyn Executor> = match args.producer.mock_law()? {
        None => Box::new(Local {
            exe: std::env::current_exe().map_err(|e| {
                Failure::new(
                    exit::INTERNAL,
                    format!("cannot find the scalebook binary: {e}"),
                )
            })?,
            threads,
        }),
        Some(law) => Box::new(Mock { law }),
    };
    let options = Options {
        jobs,
        fail_fast: args.fail_fast,
        retry_failed: args.retry_failed,
    };
    // Train `specs` with progress shown, largest first.
    let train = |specs: &[crate::study::RunSpec]| {
        let display = Display::new(specs.len());
        let summary = scheduler::run_all(&store, executor.as_ref(), specs, options, &|event| {
            display.show(event)
        });
        display.finish();
        summary
    };
    let summary = train(&specs);

    let collected = collect::export(&store, &study.name, &specs);
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
    eprintln!(
        "{}: {}{} runs — {} trained, {} cached, {} failed ({} executor, {jobs} job(s) × {threads} thread(s)); results in {}",
        study.name,
        if study.is_mock() { MOCK_LABEL } else { "" },
        specs.len(),
        summary.trained,
        summary.cached,
        summary.failed.len(),
        executor.name(),
        store.study_dir(&study.name).join("runs.parquet").display(),
    );
    // Fit what finished (a failed run is simply not a point of the fit).
    let fits = if study.fits.is_empty() {
        FitReport::default()
    } else {
        let report = super::fit::fit_study(
            &study,
            &args.store,
            crate::pipeline::fitting::Constraints::default(),
        )?;
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
        report
    };
    let mut failed = summary.failed.clone();
    let mut planned = specs.len();
    // The method's last step: train the model the law calls compute-optimal, and a baseline.
    match crate::pipeline::chapter::plan_final(&study, &fits)? {
        Some(fp) => {
            let mut finals = vec![fp.run.clone(), fp.baseline.clone()];
            if finals
                .iter()
                .any(|s| !matches!(store.inspect(s), EntryState::Done(_)))
            {
                add_entropy(&study, &mut finals);
            }
            eprintln!(
                "{}: final run {} (N {:.3e} for N_opt {:.3e}, D {:.3e} for D_opt {:.3e}, C {:.3e}) and baseline {}",
                study.name,
                fp.run.name,
                fp.n(&fp.run),
                fp.n_opt,
                fp.run.tokens() as f64,
                fp.d_opt,
                fp.budget,
                fp.baseline.name
            );
            let outcome = train(&finals);
            if !outcome.store_errors.is_empty() {
                return Err(Failure {
                    code: exit::INTERNAL,
                    lines: outcome.store_errors,
                });
            }
            failed.extend(outcome.failed);
            planned += finals.len();
        }
        None if study.final_run.is_some() => eprintln!(
            "warning: {}: no final run: the law named by `final.law` was not fitted (see the warnings)",
            study.name
        ),
        None => {}
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
        match &rendered {
            Some(r) => super::report::finish(&study, r),
            None => Ok(()),
        }
    } else {
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
