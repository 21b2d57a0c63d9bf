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
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let study = load_study(&args.study)?;
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
            let trainer = match &t.external {
                Some(e) => format!(", trained by `{}` (version {})", e.command, e.version),
                None => String::new(),
            };
            format!(
                "{} ({sweep}){trainer}, {} training FLOPs (`scalebook plan` estimates the time \
                 on this machine)",
                plural(runs.len(), "run"),
                human(flops),
            )
        }
    };
    println!("{}: ok — {summary}", args.study.display());
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
