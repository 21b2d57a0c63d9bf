//! The metrics a study asks its runs to measure while they train (`metrics:`), beside the
//! validation loss every run records. They join a run's identity only when asked for, so a
//! study without `metrics:` keeps every key.

use serde::{Deserialize, Serialize};

/// One metric a run measures at every evaluation and at its end, on the validation set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// `top1`: the share of validation tokens whose most likely prediction is the token that
    /// came.
    Top1,
    /// `perplexity`: exp of the validation loss.
    Perplexity,
    /// `facts` (the facts language only): recall@1 of a fact's value after its key, overall
    /// (`facts_recall`) and by frequency decile (`facts_recall_d1` … `_d10`, most frequent
    /// first), and precision among the confident answers (`facts_precision`: correct among
    /// those whose top probability exceeds 0.5; with `facts_confident`, their share), and the
    /// task loss `facts_nll`: the mean −ln p the model gives a fact's value after its key.
    Facts,
    /// `markov` (the Zipf–Markov language only): how often the model's most likely token is
    /// the language's own most likely one (`markov_agreement`), and how often that one is the
    /// token that came (`markov_ceiling`: the best top-1 accuracy any model can expect).
    Markov,
}

impl Metric {
    /// Every metric, in the order the study file lists them in documentation.
    pub const ALL: [Metric; 4] = [
        Metric::Top1,
        Metric::Perplexity,
        Metric::Facts,
        Metric::Markov,
    ];

    /// The name in the study file.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Top1 => "top1",
            Metric::Perplexity => "perplexity",
            Metric::Facts => "facts",
            Metric::Markov => "markov",
        }
    }

    /// The metric named `name` in a study file.
    pub fn parse(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Frequency deciles the facts recall is reported in.
pub const FACT_DECILES: usize = 10;

/// The recorded name of the recall of decile `d` (0-based, most frequent first).
pub fn decile_name(d: usize) -> String {
    format!("facts_recall_d{}", d + 1)
}

/// The names a built-in run's record carries for `metric`: `facts` records its recall, its
/// deciles, precision and confident share; `markov` its agreement and ceiling.
pub fn recorded(metric: Metric) -> Vec<String> {
    match metric {
        Metric::Top1 | Metric::Perplexity => vec![metric.name().to_string()],
        Metric::Facts => [
            "facts_recall",
            "facts_precision",
            "facts_confident",
            "facts_nll",
        ]
        .map(str::to_string)
        .into_iter()
        .chain((0..FACT_DECILES).map(decile_name))
        .collect(),
        Metric::Markov => ["markov_agreement", "markov_ceiling"]
            .map(str::to_string)
            .into(),
    }
}

/// Whether a column of `runs.parquet` or `curves.parquet` named `name` is a metric a trained
/// run records.
pub fn is_recorded(name: &str) -> bool {
    Metric::ALL
        .into_iter()
        .any(|m| recorded(m).iter().any(|r| r == name))
}
