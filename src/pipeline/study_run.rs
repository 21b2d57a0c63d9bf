//! A whole study, the sequence `scalebook run` performs: train every planned run the store
//! lacks (and, with `train.compare`, the independent runs to compare), collect them into
//! Parquet, fit the laws, train the final run and its baseline the law calls for, and
//! render the chapter. The command line parses arguments, builds the [`Backend`], shows the
//! [`Progress`] and maps the outcome to an exit code.

use std::path::Path;

use crate::exec::Executor;
use crate::exec::scheduler::{self, Event, Options, Summary};
use crate::exec::slurm::{Slurm, Stop};
use crate::fit::suite::FitReport;
use crate::report::Rendered;
use crate::store::{EntryState, Store, collect};
use crate::study::plan::{add_entropy, plan};
use crate::study::units::format_duration;
use crate::study::{RunSpec, Study};

use super::Error;

/// What trains the runs: an executor per run on this machine, or the Slurm cluster.
pub enum Backend {
    Each(Box<dyn Executor>),
    Slurm(Box<Slurm>),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Each(e) => e.name(),
            Backend::Slurm(_) => "slurm",
        }
    }
}

/// Shows a sweep's progress (bars on a terminal, lines otherwise).
pub trait Progress: Sync {
    /// A sweep of `runs` runs starts.
    fn begin(&self, runs: usize);
    fn event(&self, event: Event);
    /// The sweep has ended.
    fn end(&self);
}

/// Why a study stopped before its end.
#[derive(Debug)]
pub enum Stopped {
    /// Slurm is absent or refused the submission (exit 2).
    Unavailable(String),
    /// The store could not record results; finished runs are intact (exit 1).
    Store(Vec<String>),
    /// Interrupted, and the user chose to leave these Slurm arrays running (exit 130).
    Detached(Vec<u64>),
    /// Published records that do not read back, never replaced: (entry, why) (exit 5).
    Damaged(Vec<(String, String)>),
    /// A later step failed (fitting, the chapter).
    Step(Error),
}

impl From<Error> for Stopped {
    fn from(e: Error) -> Self {
        Stopped::Step(e)
    }
}

/// The study's planned runs and, with `train.compare`, the independent runs to compare
/// with them after them; the number of the study's own.
pub fn planned(study: &Study) -> Result<(Vec<RunSpec>, usize), Error> {
    let input = |e: crate::data::identity::DataReadError| Error::Input(e.to_string());
    let mut specs = plan(study).map_err(input)?;
    let own = specs.len();
    if let Some(c) = crate::study::branches::comparison(study) {
        specs.extend(plan(&c).map_err(input)?);
    }
    Ok((specs, own))
}

/// The task files of a study whose text is tokenized by its trained BPE, tokenized now
/// (the tokenizer is trained once per corpus and cached, as every run would): a bad item
/// stops the study before anything trains, naming its file and line. Every other task was
/// checked item by item when the study file was read.
fn check_tasks(study: &Study) -> Result<(), Error> {
    let crate::study::Source::Train(t) = &study.source else {
        return Ok(());
    };
    let bpe = matches!(&t.data, crate::data::DataSpec::Text(x)
        if matches!(x.tokenizer, crate::data::Tokenizer::Bpe { .. }));
    if t.tasks.is_empty() || !bpe {
        return Ok(());
    }
    let (context, eval) = (t.model.context as usize, t.train.eval_tokens as usize);
    let source = crate::data::source::TokenSource::open(&t.data, study.seed, context, eval)
        .map_err(|e| Error::Input(e.to_string()))?;
    crate::train::tasks::TaskSet::open(&t.tasks, &source, context)
        .map(|_| ())
        .map_err(Error::Input)
}

/// One study run: where, with what, and how it is shown.
pub struct StudyRun<'a> {
    pub study: &'a Study,
    pub store: &'a Store,
    pub backend: Backend,
    pub options: Options,
    /// How the runs train, for the summary line (`local executor, 2 job(s) × 1 thread(s)`).
    pub how: String,
    /// The book to render the chapter into (`None`: no chapter).
    pub book: Option<&'a Path>,
    pub progress: &'a dyn Progress,
}

/// What a study run did.
pub struct Outcome {
    pub fits: FitReport,
    pub rendered: Option<Rendered>,
    /// (run, reason) of every run that diverged or failed, the final run's included.
    pub failed: Vec<(String, String)>,
    /// Runs planned, the final run and baseline included.
    pub planned: usize,
}

impl StudyRun<'_> {
    /// Run the study to its end (`specs` and `own` from [`planned`]).
    pub fn run(
        &self,
        specs: &mut Vec<RunSpec>,
        own: usize,
        started: std::time::Instant,
    ) -> Result<Outcome, Stopped> {
        let (study, store) = (self.study, self.store);
        check_tasks(study)?;
        let mut summary = self.train(specs)?;
        let mut own = own;
        if let Some(more) = self.train_transferred(specs, &mut own)? {
            summary.trained += more.trained;
            summary.cached += more.cached;
            summary.failed.extend(more.failed);
            summary.store_errors.extend(more.store_errors);
            summary.damaged.extend(more.damaged);
        }
        let compared = specs.split_off(own);
        let collected = collect::export(store, &study.name, specs).and_then(|c| {
            match crate::study::branches::comparison(study) {
                Some(other) => collect::export(store, &other.name, &compared),
                None => Ok(c),
            }
        });
        if !summary.store_errors.is_empty() {
            let mut lines = summary.store_errors.clone();
            lines.push(format!(
                "{}: the run store could not record results; finished runs are intact",
                store.root().display()
            ));
            return Err(Stopped::Store(lines));
        }
        collected.map_err(|e| Stopped::Step(Error::Io(e.to_string())))?;
        if !summary.damaged.is_empty() {
            return Err(Stopped::Damaged(summary.damaged));
        }
        eprintln!(
            "{}: {}{} runs{} — {} trained, {} cached, {} failed ({}); results in {}",
            study.name,
            if study.is_mock() {
                super::MOCK_LABEL
            } else {
                ""
            },
            specs.len(),
            if compared.is_empty() {
                String::new()
            } else {
                format!(" and {} independent runs to compare", compared.len())
            },
            summary.trained,
            summary.cached,
            summary.failed.len(),
            self.how,
            store.study_dir(&study.name).join("runs.parquet").display(),
        );
        print_spend(study, store, specs, &compared, started);
        // Fit what finished (a failed run is simply not a point of the fit).
        let fits = fit(study, store)?;
        let mut failed = summary.failed.clone();
        let mut planned = specs.len();
        // The method's last step: train the model the law calls compute-optimal, and a baseline.
        if let Some(outcome) = self.train_final(&fits)? {
            failed.extend(outcome.failed);
            planned += 2;
        }
        let rendered = match self.book {
            Some(book) => Some(super::chapter::report_study(study, store, &fits, book)?),
            None => None,
        };
        Ok(Outcome {
            fits,
            rendered,
            failed,
            planned,
        })
    }

    /// Train `specs` with progress shown, largest first; the data's entropy rate is sampled
    /// only when something will train.
    fn train(&self, specs: &mut [RunSpec]) -> Result<Summary, Stopped> {
        if specs
            .iter()
            .any(|s| !matches!(self.store.inspect(s), EntryState::Done(_)))
        {
            add_entropy(self.study, specs);
        }
        self.progress.begin(specs.len());
        let events = |event| self.progress.event(event);
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
        self.progress.end();
        summary.map_err(|stop| match stop {
            Stop::Unavailable(why) => Stopped::Unavailable(why),
            Stop::Store(why) => Stopped::Store(vec![why]),
            Stop::Detached(jobs) => Stopped::Detached(jobs),
        })
    }

    /// Learning-rate transfer: once the sweep has its records, train the runs it decides
    /// (after the sweep: on Slurm, a second array) and put them among the study's own runs
    /// (`specs[..own]`).
    fn train_transferred(
        &self,
        specs: &mut Vec<RunSpec>,
        own: &mut usize,
    ) -> Result<Option<Summary>, Stopped> {
        use super::transfer::Transfer;
        let name = &self.study.name;
        let transfer = super::transfer::resolve(self.study, self.store, &specs[..*own])?;
        if let Some(line) = super::transfer::waiting_line(self.study, &transfer) {
            eprintln!("warning: {name}: {line}");
        }
        let Transfer::Ready {
            specs: decided,
            decisions,
        } = transfer
        else {
            return Ok(None);
        };
        let lrs: Vec<String> = decisions
            .iter()
            .map(|d| format!("{} at {}", d.point, d.lr))
            .collect();
        eprintln!(
            "{name}: learning rates decided by the sweep: {}",
            lrs.join(", ")
        );
        let mut more: Vec<RunSpec> = decided
            .into_iter()
            .filter(|s| !specs.iter().any(|x| x.key == s.key))
            .collect();
        if more.is_empty() {
            return Ok(None);
        }
        let summary = self.train(&mut more)?;
        let n = more.len();
        specs.splice(*own..*own, more);
        *own += n;
        Ok(Some(summary))
    }

    /// Train the final run and its baseline when the law the data support gives them; say
    /// their shape and time first, or why there is none.
    fn train_final(&self, fits: &FitReport) -> Result<Option<Summary>, Stopped> {
        use super::final_target::Decision;
        let study = self.study;
        let (decision, plan) = super::chapter::final_decision(study, fits)?;
        let Some(fp) = plan else {
            match decision {
                Decision::Skip(why) => eprintln!("{}: final run skipped: {why}", study.name),
                _ if study.final_run.is_some() => eprintln!(
                    "warning: {}: no final run: the law named by `final.law` was not fitted \
                     (see the warnings)",
                    study.name
                ),
                _ => {}
            }
            return Ok(None);
        };
        let mut specs = fp.specs();
        let time = super::estimate::time_to_say(&specs, self.store);
        let shape = |s: &RunSpec| s.config().shape_words();
        eprintln!(
            "{}: final run {} ({}, {} steps, {}) and baseline {} ({}, {})",
            study.name,
            fp.run.name,
            shape(&fp.run),
            fp.run.steps,
            time[0],
            fp.baseline.name,
            shape(&fp.baseline),
            time[1]
        );
        if let Some(n) = &fp.neighbour {
            eprintln!(
                "{}: and its neighbour {} at the comparison batch size {} ({})",
                study.name, n.name, n.identity.train.batch, time[2]
            );
        }
        let outcome = self.train(&mut specs)?;
        if !outcome.store_errors.is_empty() {
            return Err(Stopped::Store(outcome.store_errors));
        }
        if !outcome.damaged.is_empty() {
            return Err(Stopped::Damaged(outcome.damaged));
        }
        Ok(Some(outcome))
    }
}

/// Fit the study's laws (none when it names no fits) and say what came out.
fn fit(study: &Study, store: &Store) -> Result<FitReport, Error> {
    if study.fits.is_empty() {
        return Ok(FitReport::default());
    }
    let input = super::fitting::study_rows(study, store)?;
    let report = super::fitting::fit_rows(study, store, &input, Default::default())?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(c) = &report.chinchilla {
        eprintln!(
            "{}: {}L = {:.4} + {:.4}/N^{:.4} + {:.4}/D^{:.4} over {} runs; fits in {}",
            study.name,
            if study.is_mock() {
                super::MOCK_LABEL
            } else {
                ""
            },
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

/// The wall time so far and what the study's records cost (and the runs compared with
/// them, with `train.compare`).
fn print_spend(
    study: &Study,
    store: &Store,
    specs: &[RunSpec],
    compared: &[RunSpec],
    started: std::time::Instant,
) {
    let spend = super::spend::spend(store, specs);
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
        let other = super::spend::spend(store, compared);
        eprintln!(
            "{}: the {} independent run(s) to compare with cost {:.4} CPU-hours",
            study.name,
            other.records,
            other.cpu_hours()
        );
    }
}
