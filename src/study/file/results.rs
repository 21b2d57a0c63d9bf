//! `results:`: imported runs — the table, its columns, a joined table of metrics, and which
//! rows to keep.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::study::units::Count;

/// Column names of an imported results table.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultsColumns {
    /// Column holding N (parameters).
    pub params: String,
    /// Column holding D (tokens); give this or `flops`.
    #[serde(default)]
    pub tokens: Option<String>,
    /// Column holding C (training FLOPs); D = C / (6·N).
    #[serde(default)]
    pub flops: Option<String>,
    /// Column holding the loss.
    pub loss: String,
    /// Column holding U_D, the unique tokens each run's D were drawn from (repeated data);
    /// give this or `epochs`, or neither when no run repeats its data.
    #[serde(default)]
    pub unique_tokens: Option<String>,
    /// Column naming each run (unique among the rows kept), shown in the tables and hold-out
    /// points; without it rows are named `row <k>` by their line under the header.
    #[serde(default)]
    pub name: Option<String>,
    /// Column holding the epochs D / U_D; U_D = D / epochs.
    #[serde(default)]
    pub epochs: Option<String>,
}

/// Imported results.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultsFile {
    /// CSV or Parquet file, relative to the study file.
    pub path: String,
    /// Which columns hold N, D (or C) and the loss.
    pub columns: ResultsColumns,
    /// Drop the k highest-loss rows before fitting (Besiroglu et al. 2024 drop 5).
    #[serde(default)]
    pub drop_highest_loss: Option<Count>,
    /// Keep only the rows whose cells equal these values (`{ dataset: rpj }`), or one of a
    /// list of them (`{ name: [a, b] }`), compared as text: one table can hold several
    /// studies' runs.
    #[serde(default, rename = "where")]
    pub filter: Option<std::collections::BTreeMap<String, WhereValue>>,
    /// A second table (CSV or Parquet, relative to the study file) joined on a key column
    /// both tables have: its columns can hold the runs' metrics.
    #[serde(default)]
    pub join: Option<JoinFile>,
    /// Columns recorded as each run's metrics (task accuracies): a list of column names, or
    /// a map of metric name to column.
    #[serde(default)]
    pub metrics: Option<MetricColumns>,
}

/// `results.join`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinFile {
    pub path: String,
    /// The key column, in both tables; each key names one row of the joined table.
    pub on: String,
}

/// `results.metrics`: columns by name, or a map of metric name to column.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum MetricColumns {
    Columns(Vec<String>),
    Named(std::collections::BTreeMap<String, String>),
}

/// One value a `results.where` column must equal, or a list of values it may equal.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum WhereValue {
    One(String),
    AnyOf(Vec<String>),
}

impl WhereValue {
    /// The values a cell may equal.
    pub fn values(&self) -> Vec<String> {
        match self {
            WhereValue::One(v) => vec![v.clone()],
            WhereValue::AnyOf(vs) => vs.clone(),
        }
    }
}
