//! `metrics:`: what every run of a training study measures beside its loss.

use super::Validator;
use crate::data::DataSpec;
use crate::study::TrainingPlan;
use crate::study::metrics::{FACT_DECILES, Metric, decile_name};

impl Validator {
    /// The metrics `names` ask for, sorted; an unknown or repeated name, `facts` without the
    /// facts language, or any metric with an external trainer is an error.
    pub(super) fn measured(
        &mut self,
        names: Option<&[String]>,
        plan: &TrainingPlan,
    ) -> Vec<Metric> {
        let Some(names) = names else {
            return Vec::new();
        };
        if names.is_empty() {
            self.error(
                "metrics",
                "is empty: name at least one metric, or remove it",
            );
        }
        let mut out: Vec<Metric> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let field = format!("metrics[{i}]");
            let Some(metric) = Metric::parse(name) else {
                let known: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                self.error(
                    field,
                    format!("unknown metric `{name}`: use {}", known.join(", ")),
                );
                continue;
            };
            if out.contains(&metric) {
                self.error(field, format!("`{name}` is listed twice"));
                continue;
            }
            let facts = matches!(&plan.data, DataSpec::Synthetic(s) if s.facts.is_some());
            if metric == Metric::Facts && !facts {
                self.error(
                    field,
                    "`facts` measures the facts language's recall: it needs `data.facts`",
                );
                continue;
            }
            out.push(metric);
        }
        if !out.is_empty() && plan.external.is_some() {
            self.error(
                "metrics",
                "the built-in engine measures these while it trains; an external trainer \
                 reports only its loss curve — remove `metrics` or `trainer`",
            );
        }
        out.sort();
        out
    }
}

/// The names a run's record carries for `metrics` (what `law: metric` may read).
pub fn recorded_names(metrics: &[Metric]) -> Vec<String> {
    let mut out = Vec::new();
    for m in metrics {
        match m {
            Metric::Top1 | Metric::Perplexity => out.push(m.name().to_string()),
            Metric::Facts => {
                for name in ["facts_recall", "facts_precision", "facts_confident"] {
                    out.push(name.to_string());
                }
                out.extend((0..FACT_DECILES).map(decile_name));
            }
        }
    }
    out
}
