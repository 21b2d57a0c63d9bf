//! `law: metric`: a downstream metric law over the metrics imported runs record
//! (`results.metrics`).

use super::Validator;
use crate::fit::options::{MetricForm, MetricRequest};
use crate::study::file::{FitFile, FormName};

impl Validator {
    /// `law: metric`: its form, the metrics it models (each one the results record) and the
    /// runs it is asked for. `None` after an error.
    pub(super) fn metric_request(
        &mut self,
        field: &str,
        f: &FitFile,
        (recorded, trained): (&[String], bool),
        (bootstrap, confidence): (u64, f64),
    ) -> Option<MetricRequest> {
        let before = self.error_count();
        let form = match f.form {
            None | Some(FormName::ErrorFromLoss) => MetricForm::ErrorFromLoss,
            Some(FormName::TwoStep) => MetricForm::TwoStep,
            Some(FormName::Direct) => MetricForm::Direct,
            Some(other) => {
                self.error(
                    format!("{field}.form"),
                    format!(
                        "`{}` is not a metric law's form: use `error_from_loss` (the mean error \
                         over a task set against the validation loss, Gadre et al. 2024), \
                         `two_step` (task loss from N and D, then a sigmoid to accuracy) or \
                         `direct` (a power law in log-accuracy of compute)",
                        serde_json::to_value(other)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    ),
                );
                MetricForm::ErrorFromLoss
            }
        };
        if recorded.is_empty() {
            self.error(
                format!("{field}.law"),
                "law `metric` needs runs that record metrics: name them in the study's \
                 `metrics:` (trained runs) or `results.metrics` (imported runs)",
            );
        }
        // Trained runs record more than accuracies: without a list, the law reads the
        // facts recall, else the top-1 accuracy, else the first task's accuracy, else every
        // metric but the perplexity.
        let first_task = recorded.iter().find(|r| r.ends_with("_accuracy"));
        let accuracies: Vec<String> = match ["facts_recall", "top1"]
            .into_iter()
            .find(|m| recorded.iter().any(|r| r == m))
            .or(first_task.map(String::as_str))
        {
            Some(m) => vec![m.to_string()],
            None => recorded
                .iter()
                .filter(|m| *m != "perplexity")
                .cloned()
                .collect(),
        };
        let accuracies = if trained { accuracies } else { Vec::new() };
        let metrics = f.metrics.clone().unwrap_or(accuracies);
        for m in &metrics {
            if !recorded.is_empty() && !recorded.contains(m) {
                self.error(
                    format!("{field}.metrics"),
                    format!(
                        "`{m}` is not among the metrics the runs record ({})",
                        recorded.join(", ")
                    ),
                );
            }
        }
        if f.metrics.as_ref().is_some_and(|m| m.is_empty()) {
            self.error(format!("{field}.metrics"), "lists no metric");
        }
        let predict = f.predict.clone().unwrap_or_default();
        if f.predict.as_ref().is_some_and(|p| p.is_empty()) {
            self.error(format!("{field}.predict"), "lists no run");
        }
        if form != MetricForm::ErrorFromLoss && metrics.is_empty() && !recorded.is_empty() {
            self.error(
                format!("{field}.metrics"),
                format!(
                    "form `{}` models one accuracy: name it (one of {})",
                    form.name(),
                    recorded.join(", ")
                ),
            );
        }
        if form != MetricForm::ErrorFromLoss && metrics.len() > 1 {
            self.error(
                format!("{field}.metrics"),
                format!(
                    "form `{}` models one accuracy: name one metric",
                    form.name()
                ),
            );
        }
        let task_loss = self.task_loss(field, f, form, (&metrics, recorded));
        (self.error_count() == before).then_some(MetricRequest {
            form,
            metrics,
            predict,
            task_loss,
            bootstrap,
            confidence,
        })
    }

    /// `task_loss` of a two-step law: a metric the runs record, or `loss` (the validation
    /// loss); by default a task's `<name>_nll` for its `<name>_accuracy`, the facts
    /// language's `facts_nll` for its recall, else `loss`.
    fn task_loss(
        &mut self,
        field: &str,
        f: &FitFile,
        form: MetricForm,
        (metrics, recorded): (&[String], &[String]),
    ) -> Option<String> {
        if form != MetricForm::TwoStep {
            if f.task_loss.is_some() {
                self.error(
                    format!("{field}.task_loss"),
                    "only form `two_step` reads a task loss",
                );
            }
            return None;
        }
        // A task's accuracy goes with its own task loss, the facts recall with the facts'.
        let paired = metrics.first().map(|m| match m.strip_suffix("_accuracy") {
            Some(task) => format!("{task}_nll"),
            None if m == "facts_recall" => "facts_nll".to_string(),
            None => String::new(),
        });
        let default = paired
            .filter(|n| recorded.contains(n))
            .unwrap_or_else(|| "loss".to_string());
        let name = f.task_loss.clone().unwrap_or(default);
        if name != "loss" && !recorded.contains(&name) {
            self.error(
                format!("{field}.task_loss"),
                format!(
                    "`{name}` is neither `loss` (the validation loss) nor a metric the runs \
                     record ({})",
                    recorded.join(", ")
                ),
            );
        }
        Some(name)
    }
}
