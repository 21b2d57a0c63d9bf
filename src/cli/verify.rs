//! `scalebook verify STUDY [--sample K | --runs NAME…] [--seed S] [--format table|json|md]`:
//! check a study's published results — every record's integrity, a refit against
//! `fits.json`, a fresh render against the published chapter, and a seeded sample of runs
//! re-trained into a scratch folder — and exit 5 naming whatever does not verify.

use std::path::PathBuf;

use super::producer::ProducerArg;
use super::store_arg::StoreArg;
use super::{Failure, exit, load_study};
use crate::exec::Executor;
use crate::exec::local::Local;
use crate::exec::mock::{Mock, MockLaw};
use crate::pipeline::verify::{Check, Options, Pick, Report, Verdict, verify};
use crate::study::Study;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyFormat {
    Table,
    Json,
    /// Markdown, for a pull-request comment.
    Md,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The study file (YAML).
    pub study: PathBuf,
    /// Re-train this many runs, drawn at random weighted toward the largest (0: integrity,
    /// refit and render only)
    #[arg(long, default_value_t = 2, conflicts_with = "runs")]
    pub sample: usize,
    /// Re-train these runs (by name) instead of a random sample
    #[arg(long, num_args = 1.., value_name = "NAME")]
    pub runs: Vec<String>,
    /// Seed of the sample [default: drawn from the clock, and reported]
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, value_enum, default_value_t = VerifyFormat::Table)]
    pub format: VerifyFormat,
    #[command(flatten)]
    pub store: StoreArg,
    #[command(flatten)]
    pub producer: ProducerArg,
    /// The book whose chapter is compared with a fresh render
    #[arg(long, value_name = "DIR", default_value = "book")]
    pub book: PathBuf,
    /// Threads per re-trained run (the engine's bits do not depend on it)
    #[arg(long, default_value_t = 1, value_parser = super::parse_threads)]
    pub threads: usize,
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let study = args.producer.apply(load_study(&args.study)?)?;
    if study.training().is_none() {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "{}: imports its results (`results:`); there are no runs to verify",
                args.study.display()
            ),
        ));
    }
    let path = args.store.path(&study);
    if !path.join("runs").is_dir() {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "{}: no run store here (no runs/ folder); `store:` in the study or --store names it",
                path.display()
            ),
        ));
    }
    let store = crate::store::Store::existing(&path)
        .map_err(|e| Failure::new(exit::USAGE, format!("{}: {e}", path.display())))?;
    let executor = executor(&study, args)?;
    let scratch = std::env::temp_dir().join(format!("scalebook-verify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64 % 1_000_000)
    });
    let options = Options {
        pick: if args.runs.is_empty() {
            Pick::Sample(args.sample)
        } else {
            Pick::Runs(args.runs.clone())
        },
        seed,
        book: args.book.clone(),
        executor: executor.as_ref(),
        scratch: scratch.clone(),
    };
    let report = verify(&study, &store, &options);
    let _ = std::fs::remove_dir_all(&scratch);
    let report = report?;
    let text = match args.format {
        VerifyFormat::Json => serde_json::to_string_pretty(&report).expect("plain data") + "\n",
        VerifyFormat::Table => table(&report),
        VerifyFormat::Md => markdown(&report),
    };
    print!("{text}");
    if report.verdict.failed() {
        let failed: Vec<&Check> = report
            .checks
            .iter()
            .filter(|c| c.verdict.failed())
            .collect();
        let mut lines: Vec<String> = failed
            .iter()
            .map(|c| format!("not verified: {} {}: {}", c.kind, c.subject, c.detail))
            .collect();
        lines.push(format!(
            "{}: {} of {} checks did not verify",
            args.study.display(),
            failed.len(),
            report.checks.len()
        ));
        return Err(Failure {
            code: exit::VERIFY_FAILED,
            lines,
        });
    }
    Ok(())
}

/// The engine for trained records; the mock's own law for mock records.
fn executor(study: &Study, args: &Args) -> Result<Box<dyn Executor>, Failure> {
    let producer = &study.training().expect("a training study").producer;
    if study.is_mock() {
        let law = MockLaw::from_producer(producer).ok_or_else(|| {
            Failure::new(
                exit::INTERNAL,
                format!("unreadable mock producer `{producer}`"),
            )
        })?;
        return Ok(Box::new(Mock { law }));
    }
    Ok(Box::new(Local::new(super::current_exe()?, args.threads)))
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ok",
        Verdict::Identical => "identical",
        Verdict::WithinTolerance => "within tolerance",
        Verdict::Stale => "stale",
        Verdict::NotChecked => "not checked",
        Verdict::Mismatch => "MISMATCH",
    }
}

/// The headline: the overall verdict, what was re-trained, and what was not.
fn summary(r: &Report) -> String {
    let count = |kind: &str| r.checks.iter().filter(|c| c.kind == kind).count();
    format!(
        "verify {}: {} — {} records checked, fits refitted, {} chapter file(s) compared, {} run(s) \
         re-trained (seed {}: {}); {} recorded run(s) not re-trained\n",
        r.study,
        verdict_word(r.verdict),
        count("integrity"),
        count("chapter"),
        r.sample.len(),
        r.seed,
        if r.sample.is_empty() {
            "none".to_string()
        } else {
            r.sample.join(", ")
        },
        r.not_retrained
    )
}

/// Aligned text: passing integrity and chapter checks are counted, everything else listed.
fn table(r: &Report) -> String {
    let mut out = summary(r);
    for c in listed(r) {
        out.push_str(&format!(
            "  {:9} {:16} {:28} {}\n",
            c.kind,
            verdict_word(c.verdict),
            c.subject,
            c.detail
        ));
    }
    out
}

/// The checks worth a line: all but the passing integrity and chapter ones.
fn listed(r: &Report) -> impl Iterator<Item = &Check> {
    r.checks
        .iter()
        .filter(|c| !(matches!(c.kind, "integrity" | "chapter") && c.verdict == Verdict::Ok))
}

/// Markdown for a pull request: the summary, then a table of what is worth reading.
fn markdown(r: &Report) -> String {
    let mut out = format!("### scalebook verify: {}\n\n{}\n", r.study, summary(r));
    out.push_str("| check | subject | verdict | detail |\n| --- | --- | --- | --- |\n");
    for c in listed(r) {
        out.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            c.kind,
            c.subject.replace('|', "\\|"),
            verdict_word(c.verdict),
            c.detail.replace('|', "\\|")
        ));
    }
    out
}
