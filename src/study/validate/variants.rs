//! `variants:`: the recipes of imported runs compared at a target scale — the column naming
//! each run's recipe, what is compared (the loss, or the error over some of the imported
//! metrics), the target and the bootstrap.

use super::Validator;
use crate::fit::options::{DecideBy, VariantsRequest};
use crate::study::Source;
use crate::study::file::VariantsFile;

impl Validator {
    /// The request, with the recipe column set on the imported results; `None` without
    /// `variants:` or after an error.
    pub(super) fn variants(
        &mut self,
        f: Option<&VariantsFile>,
        source: Option<&mut Source>,
    ) -> Option<VariantsRequest> {
        let f = f?;
        let results = match source {
            Some(Source::Import(r)) => r,
            Some(Source::Train(_)) => {
                self.error(
                    "variants",
                    "compares recipes of imported runs: give `results:` with a column naming \
                     each run's recipe",
                );
                return None;
            }
            None => return None,
        };
        let before = self.error_count();
        if f.column.trim().is_empty() {
            self.error(
                "variants.column",
                "is empty: name the column holding each run's recipe",
            );
        }
        let recorded: Vec<String> = results.metrics.iter().map(|m| m.0.clone()).collect();
        let by = match f.by.as_deref() {
            None | Some("loss") => {
                if f.metrics.is_some() {
                    self.error("variants.metrics", "applies only with `by: error`");
                }
                DecideBy::Loss
            }
            Some("error") => {
                let metrics = f.metrics.clone().unwrap_or_else(|| recorded.clone());
                if metrics.is_empty() {
                    self.error(
                        "variants.by",
                        "`error` averages imported metrics: name them in `results.metrics`",
                    );
                }
                for m in &metrics {
                    if !recorded.contains(m) {
                        self.error(
                            "variants.metrics",
                            format!(
                                "`{m}` is not among `results.metrics` ({})",
                                recorded.join(", ")
                            ),
                        );
                    }
                }
                DecideBy::Error(metrics)
            }
            Some(other) => {
                self.error(
                    "variants.by",
                    format!("`{other}` is not what decisions compare: use `loss` or `error`"),
                );
                DecideBy::Loss
            }
        };
        let target = f.target.as_ref().map(|t| {
            let params = self.real(
                "variants.target.params",
                Some(t.params),
                1.0,
                "a positive number",
                |x| x > 0.0,
            );
            let tokens = self.real(
                "variants.target.tokens",
                Some(t.tokens),
                1.0,
                "a positive number",
                |x| x > 0.0,
            );
            [params, tokens]
        });
        let bootstrap = self.count("variants.bootstrap", f.bootstrap, 200, 0, 100_000);
        let confidence = self.real(
            "variants.confidence",
            f.confidence,
            0.95,
            "in (0, 1)",
            |x| x > 0.0 && x < 1.0,
        );
        if self.error_count() > before {
            return None;
        }
        results.variant_column = Some(f.column.clone());
        Some(VariantsRequest {
            by,
            target,
            bootstrap,
            confidence,
        })
    }
}
