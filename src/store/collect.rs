//! Collect a study's finished runs into polars DataFrames — `runs` (one row per run) and
//! `curves` (one row per logged step) — and write them as Parquet, the form fits, reports and
//! other tools (pandas, pyarrow, DuckDB) read.

use std::io;
use std::path::Path;

use polars::prelude::*;

use super::{EntryState, Store};
use crate::files::atomic::write_atomic;
use crate::record::{CurvePoint, RunResult};
use crate::study::RunSpec;

/// The collected tables.
pub struct Collected {
    pub runs: DataFrame,
    pub curves: DataFrame,
}

/// Why collection failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("building the results table: {0}")]
    Polars(#[from] PolarsError),
}

/// Rows for every planned run that has a record (ok, diverged or failed), in plan order.
pub fn collect(store: &Store, specs: &[RunSpec]) -> Result<Collected, CollectError> {
    let mut results: Vec<(RunResult, &RunSpec)> = Vec::new();
    let mut curve_rows: Vec<(String, CurvePoint)> = Vec::new();
    for spec in specs {
        // A corrupt entry is no row: the scheduler warned about it and retrains it.
        if let EntryState::Done(entry) | EntryState::Failed(entry) = store.inspect(spec) {
            let entry = *entry;
            curve_rows.extend(entry.curve.into_iter().map(|p| (spec.key.clone(), p)));
            results.push((entry.result, spec));
        }
    }
    let mut runs = runs_frame(&results)?;
    let records: Vec<&RunResult> = results.iter().map(|(r, _)| r).collect();
    for column in metric_columns(&records, |r| &r.metrics) {
        runs.with_column(column)?;
    }
    let mut curves = curves_frame(&curve_rows)?;
    for column in metric_columns(&curve_rows, |(_, p)| &p.metrics) {
        curves.with_column(column)?;
    }
    Ok(Collected { runs, curves })
}

/// One column per metric any of `items` records (by name, sorted), null where one does not.
fn metric_columns<T>(
    items: &[T],
    metrics: impl Fn(&T) -> &std::collections::BTreeMap<String, f64>,
) -> Vec<Column> {
    let names: std::collections::BTreeSet<&String> =
        items.iter().flat_map(|i| metrics(i).keys()).collect();
    names
        .into_iter()
        .map(|name| {
            let values: Vec<Option<f64>> = items
                .iter()
                .map(|i| metrics(i).get(name).copied())
                .collect();
            Column::new(name.as_str().into(), values)
        })
        .collect()
}

fn runs_frame(results: &[(RunResult, &RunSpec)]) -> PolarsResult<DataFrame> {
    let rs: Vec<&RunResult> = results.iter().map(|(r, _)| r).collect();
    let s = |name: &str, f: &dyn Fn(&RunResult) -> String| {
        Column::new(name.into(), rs.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    let u = |name: &str, f: &dyn Fn(&RunResult) -> u64| {
        Column::new(name.into(), rs.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    let x = |name: &str, f: &dyn Fn(&RunResult) -> f64| {
        Column::new(name.into(), rs.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    let ox = |name: &str, f: &dyn Fn(&RunResult) -> Option<f64>| {
        Column::new(name.into(), rs.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    let status = |r: &RunResult| {
        serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    DataFrame::new_infer_height(vec![
        s("key", &|r| r.key.clone()),
        s("name", &|r| r.name.clone()),
        Column::new(
            "size_name".into(),
            results
                .iter()
                .map(|(_, spec)| spec.size_name.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "point".into(),
            results
                .iter()
                .map(|(_, spec)| spec.point().to_string())
                .collect::<Vec<_>>(),
        ),
        s("status", &status),
        Column::new(
            "reason".into(),
            rs.iter().map(|r| r.reason.clone()).collect::<Vec<_>>(),
        ),
        u("layers", &|r| r.layers),
        u("d_model", &|r| r.d_model),
        u("heads", &|r| r.heads),
        u("context", &|r| r.context),
        u("vocab", &|r| r.vocab),
        u("params_total", &|r| r.params_total),
        u("params_embedding", &|r| r.params_embedding),
        u("params_non_embedding", &|r| r.params_non_embedding),
        u("tokens", &|r| r.tokens),
        u("tokens_trained", &|r| r.tokens_trained),
        u("steps", &|r| r.steps),
        x("lr", &|r| r.spec.identity.train.lr),
        Column::new(
            "batch".into(),
            results
                .iter()
                .map(|(_, spec)| spec.identity.train.batch)
                .collect::<Vec<_>>(),
        ),
        x("flops", &|r| r.flops),
        x("flops_6nd", &|r| r.flops_6nd),
        Column::new(
            "budget".into(),
            results
                .iter()
                .map(|(_, spec)| spec.budget)
                .collect::<Vec<_>>(),
        ),
        ox("val_loss", &|r| r.val_loss),
        ox("best_val_loss", &|r| r.best_val_loss),
        ox("train_loss", &|r| r.train_loss),
        x("wall_seconds", &|r| r.wall_seconds),
        x("train_seconds", &|r| r.train_seconds),
        x("tokens_per_second", &|r| r.tokens_per_second),
        Column::new(
            "computed_tokens".into(),
            rs.iter().map(|r| r.computed_tokens).collect::<Vec<_>>(),
        ),
        x("independent_wall_seconds", &|r| {
            r.independent_wall_seconds()
        }),
        Column::new(
            "peak_rss_bytes".into(),
            rs.iter().map(|r| r.peak_rss_bytes).collect::<Vec<_>>(),
        ),
        u("seed", &|r| r.seed),
        ox("data_entropy_nats", &|r| r.data_entropy_nats),
        ox("data_entropy_stderr", &|r| r.data_entropy_stderr),
        ox("val_entropy_nats", &|r| r.val_entropy_nats),
        Column::new(
            "spikes".into(),
            rs.iter()
                .map(|r| r.spikes.as_ref().map(|s| s.count))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "largest_spike_step".into(),
            rs.iter()
                .map(|r| r.spikes.as_ref().and_then(|s| s.largest_step))
                .collect::<Vec<_>>(),
        ),
        ox("largest_spike_ratio", &|r| {
            r.spikes.as_ref().and_then(|s| s.largest_ratio)
        }),
        Column::new(
            "unique_tokens".into(),
            rs.iter().map(|r| r.unique_tokens).collect::<Vec<_>>(),
        ),
        ox("epochs", &|r| {
            r.unique_tokens
                .filter(|u| *u > 0)
                .map(|u| r.tokens as f64 / u as f64)
        }),
    ])
}

fn curves_frame(rows: &[(String, CurvePoint)]) -> PolarsResult<DataFrame> {
    DataFrame::new_infer_height(vec![
        Column::new(
            "key".into(),
            rows.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "step".into(),
            rows.iter().map(|(_, p)| p.step).collect::<Vec<_>>(),
        ),
        Column::new(
            "tokens".into(),
            rows.iter().map(|(_, p)| p.tokens).collect::<Vec<_>>(),
        ),
        Column::new(
            "train_loss".into(),
            rows.iter().map(|(_, p)| p.train_loss).collect::<Vec<_>>(),
        ),
        Column::new(
            "val_loss".into(),
            rows.iter().map(|(_, p)| p.val_loss).collect::<Vec<_>>(),
        ),
        Column::new(
            "lr".into(),
            rows.iter().map(|(_, p)| p.lr).collect::<Vec<_>>(),
        ),
        Column::new(
            "wall_seconds".into(),
            rows.iter().map(|(_, p)| p.wall_seconds).collect::<Vec<_>>(),
        ),
    ])
}

/// Write a frame as Parquet, atomically.
pub fn write_parquet(frame: &mut DataFrame, path: &Path) -> Result<(), CollectError> {
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes).finish(frame)?;
    write_atomic(path, &bytes).map_err(|source| CollectError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Read a Parquet file into a frame.
pub fn read_parquet(path: &Path) -> Result<DataFrame, CollectError> {
    let file = std::fs::File::open(path).map_err(|source| CollectError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(ParquetReader::new(file).finish()?)
}

/// Collect and write `runs.parquet` and `curves.parquet` for `study`.
pub fn export(store: &Store, study: &str, specs: &[RunSpec]) -> Result<Collected, CollectError> {
    let mut collected = collect(store, specs)?;
    let dir = store.study_dir(study);
    std::fs::create_dir_all(&dir).map_err(|source| CollectError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    write_parquet(&mut collected.runs, &dir.join("runs.parquet"))?;
    write_parquet(&mut collected.curves, &dir.join("curves.parquet"))?;
    Ok(collected)
}
