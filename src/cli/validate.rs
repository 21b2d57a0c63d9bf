//! `scalebook validate STUDY`: exit 0 when the study is valid, else exit 2 with one line per
//! problem (`FILE:LINE:COL: PATH: message`).

use std::path::PathBuf;

use super::{Failure, load_study};
use crate::data::source::TokenSource;
use crate::data::{DataSpec, TextSpec, Tokenizer};
use crate::study::units::human;
use crate::study::{Source, Sweep, TrainingPlan, plan};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The study file (YAML).
    pub study: PathBuf,
    /// The book the chapter will go into: links in `report.sections` text are checked
    /// against it
    #[arg(long, value_name = "DIR", default_value = "book")]
    pub book: PathBuf,
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let study = load_study(&args.study)?;
    check_links(&study, &args.book)?;
    let summary = match &study.source {
        Source::Import(results) => format!("imports results from {}", results.path.display()),
        Source::Train(t) => {
            check_data(study.seed, t)?;
            let runs =
                plan::plan(&study).map_err(|e| Failure::new(super::exit::USAGE, e.to_string()))?;
            let flops: f64 = runs.iter().map(|r| r.flops).sum();
            let sweep = match &t.sweep {
                Sweep::Grid { tokens } => format!(
                    "{} × {}",
                    plural(t.model.sizes.len(), "size"),
                    plural(tokens.len(), "token count")
                ),
                Sweep::IsoFlop { budgets, .. } => format!(
                    "{} over {}",
                    plural(t.model.sizes.len(), "size"),
                    plural(budgets.len(), "IsoFLOP budget")
                ),
            };
            // The hyper-parameters every point is swept over.
            let mut sweep = sweep;
            // (Under `lr_transfer` only some sizes sweep the rate: the line below says so.)
            let rates = if t.transfer.is_some() {
                1
            } else {
                t.learning_rates.len()
            };
            for (n, what) in [
                (rates, "learning rate"),
                (t.batch_sizes.len(), "batch size"),
            ] {
                if n > 1 {
                    sweep.push_str(&format!(" × {}", plural(n, what)));
                }
            }
            let trainer = match &t.external {
                Some(e) => format!(", trained by `{}` (version {})", e.command, e.version),
                None => String::new(),
            };
            let deferred = crate::study::transfer::deferred(t).len();
            let after = if deferred > 0 {
                format!(
                    ", then {} whose learning rate the sweep decides",
                    plural(deferred, "run")
                )
            } else {
                String::new()
            };
            let before = if deferred > 0 { " before them" } else { "" };
            format!(
                "{} ({sweep}){after}{trainer}, {} training FLOPs{before} (`scalebook plan` \
                 estimates the time on this machine)",
                plural(runs.len(), "run"),
                human(flops),
            )
        }
    };
    println!("{}: ok — {summary}", args.study.display());
    Ok(())
}

/// Every relative link in the study's own text must name a file the chapter writes (its
/// pages and figures) or one already in the book (`BOOK/src/<study>/` is where links start).
fn check_links(study: &crate::study::Study, book: &std::path::Path) -> Result<(), Failure> {
    use crate::study::Section;
    let chapter = book.join("src").join(&study.name);
    let charts: Vec<&str> = study
        .sections
        .iter()
        .filter_map(|s| match s {
            Section::Chart(id) => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let will_write = |path: &str| {
        ["index.md", "report.md"].contains(&path)
            || path
                .strip_prefix("figures/")
                .and_then(|f| f.strip_suffix(".svg"))
                .is_some_and(|id| charts.contains(&id))
    };
    for (i, section) in study.sections.iter().enumerate() {
        let Section::Text(text) = section else {
            continue;
        };
        // A link a template computes is checked when the chapter is rendered.
        let plain: String = text
            .lines()
            .filter(|l| !l.contains("{{") && !l.contains("{%"))
            .collect::<Vec<_>>()
            .join("\n");
        if let Some(target) = crate::report::book::first_broken_link(&chapter, &plain, &will_write)
        {
            return Err(Failure::new(
                super::exit::USAGE,
                format!(
                    "{}: report.sections[{i}]: the link `{target}` names no file of the chapter \
                     or of the book {} (links are relative to {})",
                    study.path.display(),
                    book.display(),
                    chapter.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Read file data once, so bad data (non-UTF-8 text, token ids ≥ vocab, a corpus too short
/// for the context or the validation set) fails here rather than mid-sweep. BPE studies are
/// checked as bytes: training the tokenizer is the run's job.
fn check_data(seed: u64, t: &TrainingPlan) -> Result<(), Failure> {
    let data = match &t.data {
        DataSpec::Synthetic(_) => return Ok(()),
        DataSpec::Text(text) => DataSpec::Text(TextSpec {
            tokenizer: Tokenizer::Bytes,
            ..text.clone()
        }),
        other => other.clone(),
    };
    let (context, eval_tokens) = (t.model.context as usize, t.train.eval_tokens as usize);
    TokenSource::open(&data, seed, context, eval_tokens)
        .map(|_| ())
        .map_err(|e| Failure::new(super::exit::USAGE, e.to_string()))
}

/// `1 run`, `3 runs`.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
