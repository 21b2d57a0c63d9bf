//! The study file's downstream keys: `tasks:` (task files every evaluation scores) and
//! `variants:` (recipes of imported runs compared at a target scale).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::study::units::{Count, Real};

/// One task file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    /// Lower-case letters, digits and `_`: the records' `<name>_accuracy` and `<name>_nll`.
    pub name: String,
    /// The JSONL file, relative to the study file.
    pub path: String,
    /// `sum` (default): a choice's summed log-likelihood; `mean`: per token.
    #[serde(default)]
    pub score: Option<crate::study::tasks::Score>,
}

/// `variants:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantsFile {
    /// The results column naming each run's recipe (a training set, a setting).
    pub column: String,
    /// `loss` (default) or `error`: 1 − the mean of `metrics`.
    #[serde(default)]
    pub by: Option<String>,
    /// With `by: error`, the metrics averaged (default every `results.metrics` one).
    #[serde(default)]
    pub metrics: Option<Vec<String>>,
    /// The scale the decision is for (default the largest run's).
    #[serde(default)]
    pub target: Option<TargetFile>,
    /// Bootstrap resamples of each recipe's runs (default 200).
    #[serde(default)]
    pub bootstrap: Option<Count>,
    /// Interval coverage (default 0.95).
    #[serde(default)]
    pub confidence: Option<Real>,
}

/// `variants.target`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    pub params: Real,
    pub tokens: Real,
}
