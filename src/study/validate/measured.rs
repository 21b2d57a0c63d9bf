//! `metrics:`: what every run of a training study measures beside its loss — the built-in
//! engine's own metrics, or the names an external trainer reports.

use super::Validator;
use crate::data::DataSpec;
use crate::study::TrainingPlan;
use crate::study::metrics::{Metric, recorded};

/// The longest name of a metric an external trainer reports.
const MAX_NAME: usize = 64;

impl Validator {
    /// The metrics `names` ask for, sorted. With the built-in engine each must be one it
    /// measures (`facts` on the facts language only); with an external trainer each is a
    /// name it reports (lower-case letters, digits and `_`, starting with a letter). An
    /// empty list, a repeated name or a malformed one is an error.
    pub(super) fn measured(
        &mut self,
        names: Option<&[String]>,
        plan: &TrainingPlan,
    ) -> Vec<String> {
        let Some(names) = names else {
            return Vec::new();
        };
        if names.is_empty() {
            self.error(
                "metrics",
                "is empty: name at least one metric, or remove it",
            );
        }
        let facts = matches!(&plan.data, DataSpec::Synthetic(s) if s.facts.is_some());
        let markov = matches!(&plan.data, DataSpec::Synthetic(s) if s.facts.is_none());
        let mut out: Vec<String> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let field = format!("metrics[{i}]");
            if out.contains(name) {
                self.error(field, format!("`{name}` is listed twice"));
                continue;
            }
            let why = match (&plan.external, Metric::parse(name)) {
                (Some(_), _) => external_name(name),
                (None, None) => {
                    let known: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                    Some(format!(
                        "unknown metric `{name}`: use {} (an external trainer may report \
                         metrics of its own)",
                        known.join(", ")
                    ))
                }
                (None, Some(Metric::Facts)) if !facts => Some(
                    "`facts` measures the facts language's recall: it needs `data.facts`".into(),
                ),
                (None, Some(Metric::Markov)) if !markov => Some(
                    "`markov` compares with the Zipf–Markov language's own predictions: it needs \
                     the synthetic language without `data.facts`"
                        .into(),
                ),
                (None, Some(_)) => None,
            };
            match why {
                Some(why) => self.error(field, why),
                None => out.push(name.clone()),
            }
        }
        out.sort();
        out
    }
}

/// Whether `name` is 1–`max` lower-case letters, digits and `_`, starting with a letter: a
/// metric's (or a task's) name.
pub(super) fn is_plain_name(name: &str, max: usize) -> bool {
    name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Why `name` cannot name a metric an external trainer reports, if it cannot.
fn external_name(name: &str) -> Option<String> {
    let ok = is_plain_name(name, MAX_NAME);
    (!ok).then(|| {
        format!(
            "`{name}` is not a metric name: use 1–{MAX_NAME} lower-case letters, digits and `_`, \
             starting with a letter (the trainer reports it under that name)"
        )
    })
}

/// The names a run's record carries for the metrics named `metrics` (what `law: metric` may
/// read): the built-in engine's expanded (`facts` records its recall, deciles, precision),
/// an `external` trainer's as they are.
pub fn recorded_names(metrics: &[String], external: bool) -> Vec<String> {
    metrics
        .iter()
        .flat_map(|name| match Metric::parse(name).filter(|_| !external) {
            Some(m) => recorded(m),
            None => vec![name.clone()],
        })
        .collect()
}
