//! Imported results (`results:` in a study): a CSV or Parquet table of published or earlier
//! runs, read with polars into fit rows. Every bad cell is an error naming its row and column.

use std::path::Path;

use polars::prelude::*;

use crate::fit::suite::Row;
use crate::study::{ResultsSpec, ResultsUnique, ResultsX};

/// Why a results table cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ImportError {
    pub path: String,
    pub message: String,
}

pub(super) fn error(path: &Path, message: impl Into<String>) -> ImportError {
    ImportError {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Read the table as a DataFrame.
pub fn read_table(path: &Path) -> Result<DataFrame, ImportError> {
    let parquet = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    if parquet {
        std::fs::File::open(path)
            .map_err(|e| error(path, format!("cannot open: {e}")))
            .and_then(|f| {
                ParquetReader::new(f)
                    .finish()
                    .map_err(|e| error(path, format!("not a readable Parquet file: {e}")))
            })
    } else {
        CsvReadOptions::default()
            .with_has_header(true)
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish())
            .map_err(|e| error(path, format!("not a readable CSV file: {e}")))
    }
}

pub(super) fn column(
    df: &DataFrame,
    path: &Path,
    key: &str,
    name: &str,
) -> Result<Vec<Option<f64>>, ImportError> {
    let col = df.column(name).map_err(|_| {
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        error(
            path,
            format!(
                "results.columns.{key}: no column `{name}`; the table has {}",
                names.join(", ")
            ),
        )
    })?;
    let floats = col
        .cast(&DataType::Float64)
        .map_err(|e| error(path, format!("column `{name}` is not numeric: {e}")))?;
    let values = floats
        .f64()
        .map_err(|e| error(path, format!("column `{name}` is not numeric: {e}")))?;
    Ok((0..values.len()).map(|i| values.get(i)).collect())
}

/// Which rows match every column of `results.where` (one of its values), the cells compared
/// as text.
fn filter(
    df: &DataFrame,
    path: &Path,
    pairs: &[(String, Vec<String>)],
) -> Result<Vec<bool>, ImportError> {
    let mut keep = vec![true; df.height()];
    for (name, want) in pairs {
        let col = df.column(name).map_err(|_| {
            error(
                path,
                format!("results.where.{name}: no column `{name}` in the table"),
            )
        })?;
        let text = col
            .cast(&DataType::String)
            .map_err(|e| error(path, format!("results.where.{name}: {e}")))?;
        let text = text
            .str()
            .map_err(|e| error(path, format!("results.where.{name}: {e}")))?;
        // A listed value no row has is a typo, not a wish to drop a row.
        if want.len() > 1
            && let Some(missing) = want
                .iter()
                .find(|w| !(0..text.len()).any(|i| text.get(i) == Some(w.as_str())))
        {
            return Err(error(
                path,
                format!("results.where.{name}: no row has `{missing}` in column `{name}`"),
            ));
        }
        for (i, k) in keep.iter_mut().enumerate() {
            *k &= text
                .get(i)
                .is_some_and(|cell| want.iter().any(|w| w == cell));
        }
    }
    if !pairs.is_empty() && !keep.iter().any(|k| *k) {
        let what: Vec<String> = pairs
            .iter()
            .map(|(k, v)| match v.as_slice() {
                [one] => format!("{k} = {one}"),
                many => format!("{k} in [{}]", many.join(", ")),
            })
            .collect();
        return Err(error(
            path,
            format!("results.where: no row has {}", what.join(" and ")),
        ));
    }
    Ok(keep)
}

/// Each row's name: its cell of `results.columns.name` (non-empty, unique among the kept
/// rows), else `row <k>` by its line under the header.
fn names(
    df: &DataFrame,
    path: &Path,
    column: Option<&str>,
    keep: &[bool],
) -> Result<Vec<String>, ImportError> {
    let Some(name) = column else {
        return Ok((1..=df.height()).map(|i| format!("row {i}")).collect());
    };
    let bad = |e: String| error(path, format!("results.columns.name: {e}"));
    let col = df
        .column(name)
        .map_err(|_| bad(format!("no column `{name}` in the table")))?;
    let text = col
        .cast(&DataType::String)
        .map_err(|e| bad(e.to_string()))?;
    let text = text.str().map_err(|e| bad(e.to_string()))?;
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    let mut out = Vec::with_capacity(df.height());
    for (i, kept) in keep.iter().enumerate() {
        let cell = text.get(i).unwrap_or("").trim().to_string();
        if *kept {
            if cell.is_empty() {
                return Err(error(
                    path,
                    format!(
                        "row {}, column `{name}`: empty; every run needs a name",
                        i + 1
                    ),
                ));
            }
            if let Some(first) = seen.insert(cell.clone(), i) {
                return Err(error(
                    path,
                    format!(
                        "row {}, column `{name}`: `{cell}` names row {} too; run names must be \
                         unique",
                        i + 1,
                        first + 1
                    ),
                ));
            }
        }
        out.push(cell);
    }
    Ok(out)
}

/// Each row's recipe (`variants.column`), when the study compares recipes: a kept row's cell
/// must not be empty.
fn variants(
    df: &DataFrame,
    path: &Path,
    column: Option<&str>,
    keep: &[bool],
) -> Result<Option<Vec<String>>, ImportError> {
    let Some(name) = column else {
        return Ok(None);
    };
    let bad = |e: String| error(path, format!("variants.column: {e}"));
    let col = df
        .column(name)
        .map_err(|_| bad(format!("no column `{name}` in the table")))?
        .cast(&DataType::String)
        .map_err(|e| bad(e.to_string()))?;
    let text = col.str().map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::with_capacity(df.height());
    for (i, kept) in keep.iter().enumerate() {
        let cell = text.get(i).unwrap_or("").trim().to_string();
        if *kept && cell.is_empty() {
            return Err(bad(format!(
                "row {}: empty; every run needs its recipe",
                i + 1
            )));
        }
        out.push(cell);
    }
    Ok(Some(out))
}

/// Rows for fitting: N, D (given, or C / 6N) and loss, the `drop_highest_loss` highest losses
/// removed (Besiroglu et al. 2024 drop 5 of Epoch's 245 points).
pub fn import_rows(spec: &ResultsSpec) -> Result<Vec<Row>, ImportError> {
    let path = &spec.path;
    let df = read_table(path)?;
    let n = column(&df, path, "params", &spec.params_column)?;
    let (x_key, x_name, x_is_flops) = match &spec.x_column {
        ResultsX::Tokens(c) => ("tokens", c, false),
        ResultsX::Flops(c) => ("flops", c, true),
    };
    let x = column(&df, path, x_key, x_name)?;
    let loss = column(&df, path, "loss", &spec.loss_column)?;
    let unique = match &spec.unique {
        Some(ResultsUnique::Tokens(c)) => Some((column(&df, path, "unique_tokens", c)?, c, false)),
        Some(ResultsUnique::Epochs(c)) => Some((column(&df, path, "epochs", c)?, c, true)),
        None => None,
    };
    let keep = filter(&df, path, &spec.filter)?;
    let names = names(&df, path, spec.name_column.as_deref(), &keep)?;
    let variants = variants(&df, path, spec.variant_column.as_deref(), &keep)?;
    let mut metrics = super::join::metrics(&df, path, spec, &keep)?;
    let mut rows = Vec::with_capacity(df.height());
    for i in (0..df.height()).filter(|&i| keep[i]) {
        // Data rows are numbered from 1, as a spreadsheet shows them under the header.
        let cell = |values: &[Option<f64>], name: &str| -> Result<f64, ImportError> {
            match values[i] {
                Some(v) if v.is_finite() && v > 0.0 => Ok(v),
                Some(v) => Err(error(
                    path,
                    format!(
                        "row {}, column `{name}`: {v} is not a positive finite number",
                        i + 1
                    ),
                )),
                None => Err(error(
                    path,
                    format!("row {}, column `{name}`: empty or not a number", i + 1),
                )),
            }
        };
        let n_i = cell(&n, &spec.params_column)?;
        let x_i = cell(&x, x_name)?;
        let loss_i = cell(&loss, &spec.loss_column)?;
        let (tokens, flops) = if x_is_flops {
            (x_i / (6.0 * n_i), x_i)
        } else {
            (x_i, 6.0 * n_i * x_i)
        };
        let unique_tokens = match &unique {
            Some((values, name, is_epochs)) => {
                let v = cell(values, name)?;
                let u = if *is_epochs { tokens / v } else { v };
                // A run that trains on fewer tokens than the pool holds sees D unique ones.
                Some(u.min(tokens))
            }
            None => None,
        };
        rows.push(Row {
            name: names[i].clone(),
            params_total: n_i,
            params_non_embedding: n_i,
            tokens,
            unique_tokens,
            loss: loss_i,
            flops,
            budget: None,
            wall_seconds: None,
            peak_rss_bytes: None,
            threads: None,
            metrics: std::mem::take(&mut metrics[i]),
            variant: variants.as_ref().map(|v| v[i].clone()),
        });
    }
    let drop = spec.drop_highest_loss as usize;
    if drop >= rows.len() {
        return Err(error(
            path,
            format!(
                "results.drop_highest_loss: dropping {drop} of {} rows leaves nothing to fit",
                rows.len()
            ),
        ));
    }
    // Stable sort: ties keep file order, so the same rows are dropped every time.
    let mut by_loss: Vec<usize> = (0..rows.len()).collect();
    by_loss.sort_by(|&a, &b| rows[b].loss.total_cmp(&rows[a].loss));
    let dropped: std::collections::HashSet<usize> = by_loss.into_iter().take(drop).collect();
    let rows = rows
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !dropped.contains(i))
        .map(|(_, r)| r)
        .collect();
    Ok(rows)
}
