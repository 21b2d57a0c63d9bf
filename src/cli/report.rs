//! `scalebook report STUDY [--store DIR] [--book DIR]`: write the study's chapter into the
//! book from what the store holds — its runs, its fits (`fits.json`, refitted when stale) and
//! its final run — build the HTML, and exit 4 when a `checks:` gate fails. `scalebook run`
//! calls the same code after training.

use std::path::PathBuf;

use super::store_arg::StoreArg;
use super::{Failure, exit, load_study};
use crate::pipeline::chapter::report_study;
use crate::pipeline::fitting::current_fits;
use crate::report::Rendered;
use crate::study::Study;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The study file (YAML).
    pub study: PathBuf,
    #[command(flatten)]
    pub store: StoreArg,
    #[command(flatten)]
    pub producer: super::producer::ProducerArg,
    #[command(flatten)]
    pub book: BookArg,
}

/// The `--book` option shared by `run` and `report`.
#[derive(Debug, Clone, clap::Args)]
pub struct BookArg {
    /// mdBook folder the chapter goes into (created if missing)
    #[arg(long, value_name = "DIR", default_value = "book")]
    pub book: PathBuf,
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let study = args.producer.apply(load_study(&args.study)?)?;
    let store = args.store.open(&study)?;
    let fits = current_fits(&study, &store)?;
    let rendered = report_study(&study, &store, &fits, &args.book.book)?;
    finish(&study, &rendered)
}

/// Print where the report went and turn failed checks into exit 4.
pub fn finish(study: &Study, rendered: &Rendered) -> Result<(), Failure> {
    eprintln!(
        "{}: report in {} ({} charts); HTML in {}",
        study.name,
        rendered.chapter.join("index.md").display(),
        rendered.charts.len(),
        rendered.html.join(&study.name).join("index.html").display()
    );
    for c in &rendered.checks {
        eprintln!(
            "check {}: {} ({})",
            if c.passed { "passed" } else { "FAILED" },
            c.expression,
            c.detail
        );
    }
    let failed = rendered.failed_checks();
    if failed.is_empty() {
        Ok(())
    } else {
        let mut lines: Vec<String> = failed
            .iter()
            .map(|c| {
                format!(
                    "{}: check failed: {} ({})",
                    study.path.display(),
                    c.expression,
                    c.detail
                )
            })
            .collect();
        lines.push(format!(
            "{} of {} checks failed; the report was written",
            failed.len(),
            rendered.checks.len()
        ));
        Err(Failure {
            code: exit::CHECK_FAILED,
            lines,
        })
    }
}
