//! `scalebook status STUDY [--store DIR] [--format table|json]`: each planned run as `done`,
//! `missing`, `pending` or `running` on Slurm (with the job), `running` (its lock is held),
//! `failed`, `diverged` or `corrupt`, with the reason.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::store_arg::StoreArg;
use super::{Failure, Format, MOCK_LABEL, exit, load_study};
use crate::record::RunStatus;
use crate::store::{EntryState, Store};
use crate::study::plan::plan;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The study file (YAML).
    pub study: PathBuf,
    #[command(flatten)]
    pub store: StoreArg,
    #[command(flatten)]
    pub producer: super::producer::ProducerArg,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Serialize)]
struct Row {
    key: String,
    name: String,
    state: &'static str,
    reason: Option<String>,
    val_loss: Option<f64>,
    /// The metrics a finished run recorded (the study's `metrics:`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metrics: BTreeMap<String, f64>,
}

/// A finished run's headline metrics for the table: top-1, perplexity, facts recall, Markov
/// agreement.
fn headline(metrics: &BTreeMap<String, f64>) -> Option<String> {
    let shown: Vec<String> = ["top1", "perplexity", "facts_recall", "markov_agreement"]
        .iter()
        .filter_map(|name| Some(format!("{name} {:.4}", metrics.get(*name)?)))
        .collect();
    (!shown.is_empty()).then(|| shown.join(", "))
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let study = args.producer.apply(load_study(&args.study)?)?;
    let mut specs = plan(&study).map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    // The independent runs to compare with (`train.compare`), shown as such.
    let own = specs.len();
    if let Some(other) = crate::study::branches::comparison(&study) {
        specs.extend(plan(&other).map_err(|e| Failure::new(exit::USAGE, e.to_string()))?);
    }
    let path = args.store.path(&study);
    // Status only reads (it creates and writes nothing); a store that does not exist yet
    // (no `runs/` folder) simply holds nothing.
    let store = path
        .join("runs")
        .is_dir()
        .then(|| Store::existing(&path))
        .transpose()
        .map_err(|e| {
            Failure::new(
                exit::INTERNAL,
                format!("{}: cannot read the run store: {e}", path.display()),
            )
        })?;
    // Learning-rate transfer: the runs the sweep has decided are the study's own; the points
    // it has not decided yet are listed as waiting for it.
    let transfer = match &store {
        Some(s) => crate::pipeline::transfer::resolve(&study, s, &specs[..own])
            .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?,
        None => crate::pipeline::transfer::unresolved(&study, &specs[..own]),
    };
    let mut own = own;
    if let crate::pipeline::transfer::Transfer::Ready { specs: more, .. } = &transfer {
        let fresh: Vec<_> = more
            .iter()
            .filter(|m| !specs.iter().any(|s| s.key == m.key))
            .cloned()
            .collect();
        let n = fresh.len();
        specs.splice(own..own, fresh);
        own += n;
    }
    let on_cluster = store.as_ref().map(|s| cluster_tasks(s)).unwrap_or_default();
    let mut rows: Vec<Row> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let mut metrics = BTreeMap::new();
            let (state, reason, val_loss) = match store.as_ref().map(|s| (s.inspect(spec), s)) {
                None => ("missing", None, None),
                Some((EntryState::Missing, _)) if on_cluster.contains_key(&spec.key) => {
                    let (state, task) = &on_cluster[&spec.key];
                    (*state, Some(format!("Slurm job {task}")), None)
                }
                Some((EntryState::Missing, s)) if s.is_running(spec) => ("running", None, None),
                Some((EntryState::Missing, _)) => ("missing", None, None),
                Some((EntryState::Done(r), _)) => {
                    metrics = r.result.metrics;
                    ("done", None, r.result.val_loss)
                }
                Some((EntryState::Failed(r), _)) => (
                    if r.result.status == RunStatus::Diverged {
                        "diverged"
                    } else {
                        "failed"
                    },
                    r.result.reason.clone(),
                    None,
                ),
                Some((EntryState::Corrupt(why), s)) if s.is_running(spec) => {
                    ("running", Some(format!("retraining: {why}")), None)
                }
                Some((EntryState::Corrupt(why), _)) => ("corrupt", Some(why), None),
            };
            Row {
                metrics,
                key: spec.key.clone(),
                name: if i < own {
                    spec.name.clone()
                } else {
                    format!("{} (independent)", spec.name)
                },
                state,
                reason,
                val_loss,
            }
        })
        .collect();
    let waiting_why = match &transfer {
        crate::pipeline::transfer::Transfer::Impossible { why, .. } => {
            format!("lr not decidable from the sweep: {why}")
        }
        _ => "lr decided after the sweep".to_string(),
    };
    if let crate::pipeline::transfer::Transfer::Waiting { deferred, .. }
    | crate::pipeline::transfer::Transfer::Impossible { deferred, .. } = &transfer
    {
        for d in deferred {
            rows.push(Row {
                key: String::new(),
                name: d.point.clone(),
                state: "waiting",
                reason: Some(waiting_why.clone()),
                val_loss: None,
                metrics: BTreeMap::new(),
            });
        }
    }
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows are plain data")
        ),
        Format::Table => {
            let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(3).max(3);
            println!("{:width$}  {:8}  {:>8}  detail", "run", "state", "val_loss");
            for r in &rows {
                println!(
                    "{:width$}  {:8}  {:>8}  {}",
                    r.name,
                    r.state,
                    r.val_loss.map_or(String::new(), |v| format!("{v:.4}")),
                    r.reason
                        .clone()
                        .or_else(|| headline(&r.metrics))
                        .unwrap_or_default()
                );
            }
            let count = |s: &str| rows.iter().filter(|r| r.state == s).count();
            let waiting = match count("waiting") {
                0 => String::new(),
                n => format!(", {n} waiting for the sweep"),
            };
            println!(
                "{}{} runs: {} done, {} missing, {} pending, {} running, {} failed, {} diverged, {} corrupt{waiting}",
                if study.is_mock() { MOCK_LABEL } else { "" },
                rows.len(),
                count("done"),
                count("missing"),
                count("pending"),
                count("running"),
                count("failed"),
                count("diverged"),
                count("corrupt")
            );
        }
    }
    Ok(())
}

/// Runs of the store's unfinished Slurm arrays that are queued or running: key → (state,
/// `job_task`). Empty without Slurm's commands.
fn cluster_tasks(store: &Store) -> std::collections::HashMap<String, (&'static str, String)> {
    use crate::exec::slurm::cluster::{self, TaskState};
    let mut out = std::collections::HashMap::new();
    if !cluster::on_path("scontrol") {
        return out;
    }
    for saved in crate::exec::slurm::submission::Saved::all(store.root()) {
        let Some(job) = saved.submission.job_id else {
            continue;
        };
        let Ok(Some(tasks)) = cluster::tasks(job) else {
            continue;
        };
        for (index, state) in tasks {
            let task_running = match state {
                TaskState::Pending => false,
                TaskState::Running => true,
                TaskState::Ended(_) => continue,
            };
            let runs = saved
                .submission
                .tasks
                .get(index)
                .cloned()
                .unwrap_or_default();
            for r in runs {
                let Some(run) = saved.submission.runs.get(r) else {
                    continue;
                };
                // A task trains its runs one after another: the one holding its lock runs.
                let running =
                    task_running && saved.spec(r).is_ok_and(|spec| store.is_running(&spec));
                let word = if running { "running" } else { "pending" };
                out.insert(run.key.clone(), (word, format!("{job}_{index}")));
            }
        }
    }
    out
}
