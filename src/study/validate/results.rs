//! `results:`: the imported table, its columns, its row filter, and the metrics read from it
//! or from a second table joined on a key column.

use std::path::{Path, PathBuf};

use super::Validator;
use crate::study::file::{MetricColumns, ResultsFile};
use crate::study::{ResultsSpec, ResultsUnique, ResultsX};

/// `results.join` (the joined table and its key column) and `results.metrics` (each
/// metric's name and column).
type JoinAndMetrics = (Option<(PathBuf, String)>, Vec<(String, String)>);

impl Validator {
    pub(super) fn results(&mut self, f: &ResultsFile) -> Option<ResultsSpec> {
        let path = self.existing_file("results.path", &f.path);
        let ext = Path::new(&f.path)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("csv") | Some("parquet")) {
            self.error(
                "results.path",
                format!("`{}`: expected a .csv or .parquet file", f.path),
            );
        }
        let c = &f.columns;
        for (key, name) in [("params", Some(&c.params)), ("loss", Some(&c.loss))]
            .into_iter()
            .chain([
                ("tokens", c.tokens.as_ref()),
                ("flops", c.flops.as_ref()),
                ("unique_tokens", c.unique_tokens.as_ref()),
                ("epochs", c.epochs.as_ref()),
                ("name", c.name.as_ref()),
            ])
        {
            if name.is_some_and(|n| n.trim().is_empty()) {
                self.error(
                    format!("results.columns.{key}"),
                    "column name must not be empty",
                );
            }
        }
        let x = match (&c.tokens, &c.flops) {
            (Some(t), None) => Some(ResultsX::Tokens(t.clone())),
            (None, Some(fl)) => Some(ResultsX::Flops(fl.clone())),
            (Some(_), Some(_)) => {
                self.error(
                    "results.columns.flops",
                    "give either `tokens` or `flops`, not both",
                );
                None
            }
            (None, None) => {
                self.error(
                    "results.columns",
                    "missing: a `tokens` column, or a `flops` column (D = C / 6N)",
                );
                None
            }
        };
        let unique = match (&c.unique_tokens, &c.epochs) {
            (Some(u), None) => Some(ResultsUnique::Tokens(u.clone())),
            (None, Some(e)) => Some(ResultsUnique::Epochs(e.clone())),
            (Some(_), Some(_)) => {
                self.error(
                    "results.columns.epochs",
                    "give either `unique_tokens` or `epochs`, not both",
                );
                None
            }
            (None, None) => None,
        };
        let (join, metrics) = self.results_metrics(f);
        Some(ResultsSpec {
            unique,
            path: path?,
            params_column: c.params.clone(),
            x_column: x?,
            loss_column: c.loss.clone(),
            drop_highest_loss: f.drop_highest_loss.map_or(0, |c| c.0),
            name_column: c.name.clone(),
            join,
            metrics,
            variant_column: None,
            filter: f
                .filter
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.values()))
                .collect(),
        })
    }

    /// `results.join` (the table and its key column) and `results.metrics` (each metric's
    /// name and column); `None` for the join after an error.
    pub(super) fn results_metrics(&mut self, f: &ResultsFile) -> JoinAndMetrics {
        let join = f.join.as_ref().and_then(|j| {
            let ext = Path::new(&j.path)
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if !matches!(ext.as_deref(), Some("csv") | Some("parquet")) {
                self.error(
                    "results.join.path",
                    format!("`{}`: expected a .csv or .parquet file", j.path),
                );
            }
            if j.on.trim().is_empty() {
                self.error(
                    "results.join.on",
                    "must name the key column both tables have",
                );
            }
            let path = self.existing_file("results.join.path", &j.path)?;
            Some((path, j.on.clone()))
        });
        let metrics: Vec<(String, String)> = match &f.metrics {
            None => Vec::new(),
            Some(MetricColumns::Columns(c)) => c.iter().map(|c| (c.clone(), c.clone())).collect(),
            Some(MetricColumns::Named(m)) => {
                m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            }
        };
        let mut seen = std::collections::BTreeSet::new();
        for (name, column) in &metrics {
            if name.trim().is_empty() || column.trim().is_empty() {
                self.error(
                    "results.metrics",
                    "metric and column names must not be empty",
                );
            } else if !seen.insert(name.as_str()) {
                self.error(
                    format!("results.metrics.{name}"),
                    "named twice; each metric once",
                );
            }
        }
        if f.metrics.as_ref().is_some_and(|_| metrics.is_empty()) {
            self.error("results.metrics", "lists no column");
        }
        if f.join.is_some() && metrics.is_empty() {
            self.error(
                "results.join",
                "joins a table for its metrics: add `results.metrics` naming its columns",
            );
        }
        (join, metrics)
    }
}
