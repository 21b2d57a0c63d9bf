//! Metrics of imported runs (`results.metrics`), from the results table itself or from a
//! second table joined on a key column (`results.join`): each kept run must find exactly one
//! row of the joined table by its key, and every metric a number — or the import fails with
//! one line naming the table, the row and the column.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use polars::prelude::*;

use super::import::{ImportError, column as column_values, error, read_table};
use crate::study::ResultsSpec;

/// For each results row, the joined table's row with its key (`None` for rows not kept).
type JoinedRows = [Option<usize>];

/// A table's column as text (keys compare as text, as `results.where` does).
fn text_column(
    df: &DataFrame,
    path: &Path,
    name: &str,
    field: &str,
) -> Result<Vec<String>, ImportError> {
    let col = df
        .column(name)
        .map_err(|_| error(path, format!("{field}: no column `{name}` in the table")))?;
    let text = col
        .cast(&DataType::String)
        .map_err(|e| error(path, format!("{field}: {e}")))?;
    let text = text
        .str()
        .map_err(|e| error(path, format!("{field}: {e}")))?;
    Ok((0..text.len())
        .map(|i| text.get(i).unwrap_or("").trim().to_string())
        .collect())
}

/// For every row of `left` (the results table), the row of the joined table with its key,
/// checked for the kept rows: `None` without `results.join`.
fn joined_rows(
    left: &DataFrame,
    left_path: &Path,
    right: &DataFrame,
    right_path: &Path,
    on: &str,
    keep: &[bool],
) -> Result<Vec<Option<usize>>, ImportError> {
    let right_keys = text_column(right, right_path, on, "results.join.on")?;
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, key) in right_keys.iter().enumerate() {
        if let Some(first) = index.insert(key.as_str(), i) {
            return Err(error(
                right_path,
                format!(
                    "row {}, column `{on}`: `{key}` is also row {}; a joined key must name one row",
                    i + 1,
                    first + 1
                ),
            ));
        }
    }
    let left_keys = text_column(left, left_path, on, "results.join.on")?;
    left_keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            if !keep[i] {
                return Ok(None);
            }
            match index.get(key.as_str()) {
                Some(&j) => Ok(Some(j)),
                None => Err(error(
                    left_path,
                    format!(
                        "row {}, column `{on}`: `{key}` has no row in {} (results.join)",
                        i + 1,
                        right_path.display()
                    ),
                )),
            }
        })
        .collect()
}

/// Each row's metrics by name (empty maps without `results.metrics`); rows `keep` drops are
/// not checked.
pub(super) fn metrics(
    left: &DataFrame,
    left_path: &Path,
    spec: &ResultsSpec,
    keep: &[bool],
) -> Result<Vec<BTreeMap<String, f64>>, ImportError> {
    let mut out = vec![BTreeMap::new(); left.height()];
    if spec.metrics.is_empty() {
        return Ok(out);
    }
    let joined = match &spec.join {
        Some((path, on)) => {
            let right = read_table(path)?;
            let rows = joined_rows(left, left_path, &right, path, on, keep)?;
            Some((right, path.as_path(), rows))
        }
        None => None,
    };
    for (name, column) in &spec.metrics {
        // The results table's own column first, then the joined table's.
        let (values, path, rows): (Vec<Option<f64>>, &Path, Option<&JoinedRows>) =
            if left.column(column).is_ok() {
                (
                    column_values(left, left_path, name, column)?,
                    left_path,
                    None,
                )
            } else if let Some((right, path, rows)) = joined
                .as_ref()
                .filter(|(right, _, _)| right.column(column).is_ok())
            {
                (
                    column_values(right, path, name, column)?,
                    *path,
                    Some(rows.as_slice()),
                )
            } else {
                return Err(error(
                    left_path,
                    format!(
                        "results.metrics.{name}: no column `{column}` in the results table{}",
                        if joined.is_some() {
                            " or the joined one"
                        } else {
                            ""
                        }
                    ),
                ));
            };
        for (i, map) in out.iter_mut().enumerate().filter(|(i, _)| keep[*i]) {
            let row = rows.map_or(Some(i), |r| r[i]);
            let Some(row) = row else { continue };
            match values[row] {
                Some(v) if v.is_finite() => {
                    map.insert(name.clone(), v);
                }
                _ => {
                    return Err(error(
                        path,
                        format!(
                            "row {}, column `{column}`: empty or not a finite number",
                            row + 1
                        ),
                    ));
                }
            }
        }
    }
    Ok(out)
}
