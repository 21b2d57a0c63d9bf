//! `scalebook plan STUDY [--format table|json]`: one row per run with its identity key,
//! shape, parameter counts, tokens and FLOPs.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::{Failure, Format, exit, load_study};
use crate::files::atomic::write_atomic;
use crate::pipeline::estimate::{Estimate, Source, estimate};
use crate::record::pretty;
use crate::store::{EntryState, Store};
use crate::study::diagnostics::io_reason;
use crate::study::plan::{add_entropy, plan};
use crate::study::units::{format_duration, human};
use crate::study::{RunSpec, branches};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The study file (YAML).
    pub study: PathBuf,
    #[command(flatten)]
    pub producer: super::producer::ProducerArg,
    #[command(flatten)]
    pub store: super::store_arg::StoreArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also write one run spec per run into DIR (`<run>-<key12>.json`), the input of
    /// `scalebook train-point --spec`.
    #[arg(long, value_name = "DIR")]
    pub emit_specs: Option<PathBuf>,
}

/// One row of `plan --format json`; the keys are a stable interface.
#[derive(Debug, Serialize)]
pub struct PlanRow {
    pub key: String,
    pub name: String,
    pub size_name: String,
    pub layers: u64,
    pub d_model: u64,
    pub heads: u64,
    pub context: u64,
    pub vocab: u64,
    pub params_total: u64,
    pub params_embedding: u64,
    pub params_non_embedding: u64,
    pub tokens: u64,
    pub steps: u64,
    /// Tokens per parameter, over all parameters (Chinchilla's convention).
    pub tokens_per_param: f64,
    /// 6 · params_non_embedding · tokens (Kaplan et al. 2020).
    pub flops_6nd: f64,
    /// Exact training FLOPs (Hoffmann et al. 2022, Appendix F; see model::accounting).
    pub flops: f64,
    /// IsoFLOP budget the run belongs to, if any.
    pub budget: Option<f64>,
    /// Estimated wall-clock seconds at one thread, from measured throughput.
    pub est_seconds: f64,
    /// Where that throughput came from: `store`, `cached`, `calibrated` or `mock`.
    pub est_source: Source,
    /// Whether the store already holds the finished run.
    pub done: bool,
    /// A decay branch of a shared trunk: the trunk's key and the step the decay starts at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trunk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decay_start: Option<u64>,
    /// Entropy rate of the synthetic language (nats/token): the loss floor. Null for files.
    pub data_entropy_nats: Option<f64>,
    pub data_entropy_stderr: Option<f64>,
}

impl PlanRow {
    fn new(r: &RunSpec, est_seconds: f64, est_source: Source, done: bool) -> Self {
        let m = r.config();
        PlanRow {
            key: r.key.clone(),
            name: r.name.clone(),
            size_name: r.size_name.clone(),
            layers: m.layers,
            d_model: m.d_model,
            heads: m.heads,
            context: m.context,
            vocab: m.vocab,
            params_total: r.params.total,
            params_embedding: r.params.embedding,
            params_non_embedding: r.params.non_embedding,
            tokens: r.tokens(),
            steps: r.steps,
            tokens_per_param: r.tokens() as f64 / r.params.total as f64,
            flops_6nd: r.flops_6nd,
            flops: r.flops,
            budget: r.budget,
            est_seconds,
            est_source,
            done,
            data_entropy_nats: r.data_entropy.map(|e| e.0),
            data_entropy_stderr: r.data_entropy.map(|e| e.1),
            trunk: r.identity.branch.as_ref().map(|b| b.trunk.clone()),
            decay_start: r.identity.branch.as_ref().map(|b| b.decay_start),
        }
    }
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let study = args.producer.apply(load_study(&args.study)?)?;
    let mut runs = plan(&study).map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    // The store holds measured runs and the calibration cache; without a usable one the
    // estimate calibrates every shape.
    let store = Store::open(&args.store.path(&study)).ok();
    // Learning-rate transfer: runs the sweep's records have decided are planned; points
    // still waiting for the sweep are named below the table.
    let transfer = match &store {
        Some(s) => crate::pipeline::transfer::resolve(&study, s, &runs)
            .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?,
        None => crate::pipeline::transfer::unresolved(&study, &runs),
    };
    if let crate::pipeline::transfer::Transfer::Ready { specs: more, .. } = &transfer {
        crate::pipeline::transfer::append(&mut runs, more.clone());
    }
    add_entropy(&study, &mut runs);
    let estimate = estimate(&runs, store.as_ref());
    let rows: Vec<PlanRow> = runs
        .iter()
        .zip(estimate.seconds.iter().zip(&estimate.sources))
        .map(|(r, (&seconds, &source))| {
            let done = store
                .as_ref()
                .is_some_and(|s| matches!(s.inspect(r), EntryState::Done(_)));
            PlanRow::new(r, seconds, source, done)
        })
        .collect();
    if let Some(dir) = &args.emit_specs {
        emit_specs(dir, &runs)?;
    }
    let text = match args.format {
        Format::Json => {
            let mut json = serde_json::to_string_pretty(&rows)
                .map_err(|e| Failure::new(exit::INTERNAL, e.to_string()))?;
            json.push('\n');
            json
        }
        Format::Table => {
            let mut text = table(&rows, &estimate, &Work::of(&runs, &rows));
            if let Some(other) = branches::comparison(&study) {
                let compared =
                    plan(&other).map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
                let flops: f64 = compared.iter().map(|r| r.flops).sum();
                text.push_str(&format!(
                    "plus {} independent runs to compare with (`train.compare`, study `{}`): \
                     {flops:.2e} training FLOPs\n",
                    compared.len(),
                    other.name
                ));
            }
            if let Some(line) = crate::pipeline::transfer::waiting_line(&study, &transfer) {
                text.push_str(&format!("plus {line}\n"));
            }
            text.push_str(&final_line(&study, store.as_ref(), &rows));
            text
        }
    };
    // A closed pipe (`scalebook plan … | head`) is not an error worth a message.
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(())
}

/// The final run: its shape and time once the grid's records exist (the law decides it),
/// else when it will be decided.
fn final_line(study: &crate::study::Study, store: Option<&Store>, rows: &[PlanRow]) -> String {
    use crate::pipeline::final_target::Decision;
    let Some(spec) = study.final_run else {
        return String::new();
    };
    let (Some(store), true) = (store, rows.iter().all(|r| r.done)) else {
        return format!(
            "final run: decided after the grid (the law's optimum for C = {:.3e} FLOPs)\n",
            spec.budget
        );
    };
    let Ok(fits) = crate::pipeline::fitting::fits_now(study, store) else {
        return String::new();
    };
    let fp = match crate::pipeline::chapter::final_decision(study, &fits) {
        Ok((Decision::Skip(why), _)) => return format!("final run: skipped: {why}\n"),
        Ok((_, Some(fp))) => fp,
        _ => return "final run: none (the law named by `final.law` was not fitted)\n".into(),
    };
    let time = crate::pipeline::estimate::time_to_say(&fp.specs(), store);
    let line = |r: &RunSpec, time: &str| {
        format!(
            "{} ({}, {} steps, {} tokens, {time})",
            r.name,
            r.config().shape_words(),
            r.steps,
            human(r.tokens() as f64),
        )
    };
    let neighbour = fp
        .neighbour
        .as_ref()
        .map(|n| format!("; at the comparison batch size {}", line(n, &time[2])))
        .unwrap_or_default();
    format!(
        "final run: {}; baseline {}{neighbour}\n",
        line(&fp.run, &time[0]),
        line(&fp.baseline, &time[1])
    )
}

/// What training the plan takes: its FLOPs with and without shared trunks, and the estimated
/// seconds of each piece of work left (a run, or a trunk with its branches).
struct Work {
    cost: branches::Cost,
    shared: bool,
    seconds: Vec<f64>,
}

impl Work {
    fn of(runs: &[RunSpec], rows: &[PlanRow]) -> Work {
        let all: Vec<&RunSpec> = runs.iter().collect();
        let seconds: HashMap<&str, f64> = rows
            .iter()
            .map(|r| (r.key.as_str(), r.est_seconds))
            .collect();
        let todo: Vec<&RunSpec> = runs
            .iter()
            .zip(rows)
            .filter(|(_, row)| !row.done)
            .map(|(r, _)| r)
            .collect();
        let seconds = branches::by_trunk(&todo)
            .iter()
            .map(|g| branches::group_seconds(g, |r| seconds[r.key.as_str()]))
            .collect();
        Work {
            cost: branches::cost(&all),
            shared: runs.iter().any(|r| r.identity.branch.is_some()),
            seconds,
        }
    }
}

/// The time the runs take on this machine: at one thread per run, `run`'s default, on every
/// core at once, with where the throughput came from.
fn time_line(rows: &[PlanRow], estimate: &Estimate, work: &Work) -> String {
    let cores = crate::sys::default_threads();
    let todo: Vec<&PlanRow> = rows.iter().filter(|r| !r.done).collect();
    let seconds: f64 = work.seconds.iter().sum();
    let longest = work.seconds.iter().copied().fold(0.0, f64::max);
    if estimate.count(Source::Unknown) > 0 {
        return "time: not estimated (the study's external trainer has no finished run here \
                to measure it by: its time is known after its first runs)\n"
            .into();
    }
    if todo.iter().any(|r| !r.est_seconds.is_finite()) {
        return "time: not estimated (the engine could not step some shape; see `scalebook \
                bench train`)\n"
            .into();
    }
    let mut sources = Vec::new();
    for (source, what) in [
        (Source::Store, "runs finished in the store"),
        (Source::Cached, "the calibration cache"),
        (Source::Calibrated, "a calibration now"),
        (Source::Mock, "the mock's law"),
        (Source::Scaled, "the trainer's runs scaled by FLOPs"),
    ] {
        let n = estimate.count(source);
        if n > 0 {
            sources.push(format!("{n} from {what}"));
        }
    }
    format!(
        "{} of {} runs to train: about {} at one thread per run, {} on this machine's {cores} \
         core(s) ({} jobs × 1 thread); throughput measured here: {}\n",
        todo.len(),
        rows.len(),
        format_duration(seconds),
        format_duration((seconds / cores as f64).max(longest)),
        cores,
        sources.join(", ")
    )
}

/// Write each run's spec as `DIR/<run>-<key12>.json`.
fn emit_specs(dir: &std::path::Path, runs: &[RunSpec]) -> Result<(), Failure> {
    let fail = |e: std::io::Error| {
        Failure::new(
            exit::INTERNAL,
            format!(
                "{}: cannot write run specs: {}",
                dir.display(),
                io_reason(&e)
            ),
        )
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    for run in runs {
        let path = dir.join(format!("{}.json", run.dir_name()));
        write_atomic(&path, pretty(run).as_bytes()).map_err(fail)?;
    }
    eprintln!("wrote {} run specs to {}", runs.len(), dir.display());
    Ok(())
}

fn table(rows: &[PlanRow], estimate: &Estimate, work: &Work) -> String {
    let header = [
        "run",
        "layers",
        "d_model",
        "heads",
        "params",
        "non-emb",
        "tokens",
        "tok/param",
        "FLOPs",
        "est",
        "key",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        cells.push(vec![
            r.name.clone(),
            r.layers.to_string(),
            r.d_model.to_string(),
            r.heads.to_string(),
            human(r.params_total as f64),
            human(r.params_non_embedding as f64),
            human(r.tokens as f64),
            format!("{:.1}", r.tokens_per_param),
            format!("{:.2e}", r.flops),
            format_duration(r.est_seconds),
            r.key[..12].to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            cells
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                // Names left-aligned, numbers right-aligned.
                if c == 0 || c == header.len() - 1 {
                    format!("{cell:<width$}", width = widths[c])
                } else {
                    format!("{cell:>width$}", width = widths[c])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "{} runs, {:.2e} training FLOPs\n",
        rows.len(),
        work.cost.independent
    ));
    if work.shared {
        out.push_str(&format!(
            "with shared trunks: {:.2e} training FLOPs, {:.0} % of training every run on its own \
             (each trunk once to its last branch point, plus every decay)\n",
            work.cost.shared,
            100.0 * work.cost.ratio()
        ));
    }
    out.push_str(&time_line(rows, estimate, work));
    if let Some(row) = rows.first()
        && let (Some(h), Some(se)) = (row.data_entropy_nats, row.data_entropy_stderr)
    {
        out.push_str(&format!(
            "data entropy rate {h:.4} ± {se:.4} nats/token (the loss no model can beat)\n"
        ));
    }
    out
}
