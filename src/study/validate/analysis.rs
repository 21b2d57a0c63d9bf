//! Everything after the runs: fits, hold-out, the final run, report
//! sections and checks.

use std::collections::BTreeSet;

use super::{CHART_IDS, TABLE_IDS, Validator};
use crate::study::diagnostics::did_you_mean;
use crate::study::file::{
    BootstrapStarts, CurveForm, Estimator, FinalFile, FitFile, GridKind, HoldoutFile, LawKind,
    ParamsConvention, PowerForm, ReportFile,
};
use crate::study::units::Count;
use crate::study::{FinalSpec, FitSpec, Holdout, Section, Source, Sweep};

impl Validator {
    pub(super) fn fits(
        &mut self,
        list: Option<Vec<FitFile>>,
        source: Option<&Source>,
    ) -> Vec<FitSpec> {
        let training = source.and_then(|s| match s {
            Source::Train(plan) => Some(plan.as_ref()),
            Source::Import(_) => None,
        });
        let imported = matches!(source, Some(Source::Import(_)));
        let has_isoflop = training.is_some_and(|t| matches!(t.sweep, Sweep::IsoFlop { .. }));
        let list = list.unwrap_or_else(|| {
            let mut defaults = vec![default_fit(LawKind::Chinchilla)];
            if has_isoflop {
                defaults.push(default_fit(LawKind::Isoflop));
            }
            defaults
        });
        let mut out = Vec::new();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for (i, f) in list.iter().enumerate() {
            let field = format!("fits[{i}]");
            let law = f.law;
            let only = |v: &mut Self, key: &str, present: bool, laws: &str| {
                if present {
                    v.error(
                        format!("{field}.{key}"),
                        format!("`{key}` applies only to law {laws}; remove it"),
                    );
                }
            };
            if !matches!(
                law,
                LawKind::Chinchilla
                    | LawKind::Isoflop
                    | LawKind::Power
                    | LawKind::Curve
                    | LawKind::Overtrain
                    | LawKind::DataConstrained
                    | LawKind::Metric
            ) {
                only(
                    self,
                    "bootstrap",
                    f.bootstrap.is_some(),
                    "chinchilla, isoflop, power, curve, overtrain or data_constrained",
                );
                only(
                    self,
                    "confidence",
                    f.confidence.is_some(),
                    "chinchilla, isoflop, power, curve, overtrain or data_constrained",
                );
            }
            if !matches!(
                law,
                LawKind::Chinchilla | LawKind::Overtrain | LawKind::DataConstrained
            ) {
                only(
                    self,
                    "delta",
                    f.delta.is_some(),
                    "chinchilla, overtrain or data_constrained",
                );
            }
            if law != LawKind::Chinchilla {
                only(self, "E", f.e.is_some(), "chinchilla");
                if law != LawKind::Overtrain {
                    only(
                        self,
                        "estimator",
                        f.estimator.is_some(),
                        "chinchilla and overtrain",
                    );
                }
                only(self, "grid", f.grid.is_some(), "chinchilla");
                only(
                    self,
                    "bootstrap_starts",
                    f.bootstrap_starts.is_some(),
                    "chinchilla",
                );
            }
            if matches!(law, LawKind::Cost | LawKind::Curve | LawKind::Metric) {
                only(
                    self,
                    "params",
                    f.params.is_some(),
                    "chinchilla, isoflop, frontier or power",
                );
            }
            if law != LawKind::Power {
                only(self, "x", f.x.is_some(), "power");
            }
            if !matches!(law, LawKind::Power | LawKind::Curve | LawKind::Metric) {
                only(self, "form", f.form.is_some(), "power, curve or metric");
            }
            if law != LawKind::Metric {
                only(self, "metrics", f.metrics.is_some(), "metric");
                only(self, "predict", f.predict.is_some(), "metric");
                only(self, "task_loss", f.task_loss.is_some(), "metric");
            }
            if law != LawKind::Curve {
                only(self, "burn_in", f.burn_in.is_some(), "curve");
                only(self, "curve_informed", f.curve_informed.is_some(), "curve");
                only(self, "train_loss", f.train_loss.is_some(), "curve");
            }
            if law == LawKind::Isoflop && !has_isoflop {
                self.error(
                    format!("{field}.law"),
                    "law `isoflop` needs an `isoflop:` sweep (budgets × sizes)",
                );
            }
            if matches!(law, LawKind::Frontier | LawKind::Cost | LawKind::Curve) && imported {
                self.error(
                    format!("{field}.law"),
                    format!(
                        "law `{}` needs trained runs (learning curves and timings), not imported results",
                        law_name(law)
                    ),
                );
            }
            if law == LawKind::DataConstrained {
                self.repeated_data_source(&field, source);
            }
            let default_resamples = if law == LawKind::Curve { 200 } else { 1000 };
            let bootstrap = self.count(
                &format!("{field}.bootstrap"),
                f.bootstrap,
                default_resamples,
                0,
                100_000,
            );
            let confidence = self.real(
                &format!("{field}.confidence"),
                f.confidence,
                0.95,
                "in (0, 1)",
                |x| x > 0.0 && x < 1.0,
            );
            let params = f.params.unwrap_or(ParamsConvention::Total);
            let spec = match law {
                LawKind::Chinchilla => FitSpec::Chinchilla {
                    bootstrap,
                    confidence,
                    delta: self.real(&format!("{field}.delta"), f.delta, 1e-3, "positive", |x| {
                        x > 0.0
                    }),
                    grid: f.grid.unwrap_or(GridKind::Full),
                    bootstrap_starts: f.bootstrap_starts.unwrap_or(BootstrapStarts::Warm),
                    params,
                    pinned: f.e.and_then(|e| self.pinned_floor(&field, e, source)),
                    vpnls: f.estimator == Some(Estimator::Vpnls),
                },
                LawKind::Isoflop => FitSpec::Isoflop {
                    bootstrap,
                    confidence,
                    params,
                },
                LawKind::Frontier => FitSpec::Frontier { params },
                LawKind::Auto => {
                    self.error(
                        format!("{field}.law"),
                        "`auto` names no law to fit: it is for `final.law` (the law the data \
                         support among those fitted)",
                    );
                    continue;
                }
                LawKind::Overtrain => FitSpec::Overtrain {
                    bootstrap,
                    confidence,
                    delta: self.real(&format!("{field}.delta"), f.delta, 1e-3, "positive", |x| {
                        x > 0.0
                    }),
                    params,
                    vpnls: f.estimator == Some(Estimator::Vpnls),
                },
                LawKind::DataConstrained => FitSpec::DataConstrained {
                    bootstrap,
                    confidence,
                    delta: self.real(&format!("{field}.delta"), f.delta, 1e-3, "positive", |x| {
                        x > 0.0
                    }),
                    params,
                },
                LawKind::Power => {
                    let Some(x) = f.x else {
                        self.error(
                            format!("{field}.x"),
                            "missing: law `power` needs `x: params`, `x: tokens` or `x: compute`",
                        );
                        continue;
                    };
                    let form = match f.form.map(|n| n.power()) {
                        None => PowerForm::Offset,
                        Some(Some(form)) => form,
                        Some(None) => {
                            self.error(
                                format!("{field}.form"),
                                "law `power` takes form `offset`, `pure`, `log` or `all`",
                            );
                            continue;
                        }
                    };
                    FitSpec::Power {
                        x,
                        form,
                        bootstrap,
                        confidence,
                        params,
                    }
                }
                LawKind::Cost => FitSpec::Cost,
                LawKind::Metric => {
                    let recorded: Vec<String> = match source {
                        Some(Source::Import(r)) => r.metrics.iter().map(|m| m.0.clone()).collect(),
                        Some(Source::Train(t)) => {
                            let mut names =
                                super::measured::recorded_names(&t.metrics, t.external.is_some());
                            names.extend(t.tasks.iter().flat_map(|k| k.recorded()));
                            names
                        }
                        None => Vec::new(),
                    };
                    let trained = matches!(source, Some(Source::Train(_)));
                    let runs = (recorded.as_slice(), trained);
                    match self.metric_request(&field, f, runs, (bootstrap, confidence)) {
                        Some(m) => FitSpec::Metric(m),
                        None => continue,
                    }
                }
                LawKind::Curve => {
                    let form = match f.form.map(|n| n.curve()) {
                        None => CurveForm::MultiPower,
                        Some(Some(form)) => form,
                        Some(None) => {
                            self.error(
                                format!("{field}.form"),
                                "law `curve` takes form `multi_power` or `annealing`",
                            );
                            continue;
                        }
                    };
                    FitSpec::Curve(crate::fit::options::CurveRequest {
                        form,
                        burn_in: self.real(
                            &format!("{field}.burn_in"),
                            f.burn_in,
                            0.1,
                            "in [0, 0.1]: at most the first 10 % of each run's steps",
                            |x| (0.0..=0.1).contains(&x),
                        ),
                        train_loss: f.train_loss.unwrap_or(false),
                        bootstrap,
                        confidence,
                        informed: f.curve_informed.unwrap_or(true),
                    })
                }
            };
            let identity = match &spec {
                FitSpec::Power { x, form, .. } => format!("power {x:?} {form:?}"),
                FitSpec::Metric(m) => format!("metric, form {}", m.form.name()),
                other => law_name(other.law()).to_string(),
            };
            if !seen.insert(identity.clone()) {
                self.error(field, format!("duplicate fit ({identity})"));
                continue;
            }
            out.push(spec);
        }
        out
    }

    pub(super) fn holdout(&mut self, f: &HoldoutFile, source: Option<&Source>) -> Option<Holdout> {
        if let Some(Count(k)) = f.epochs_above {
            return self.epochs_holdout(f, k, source);
        }
        match (f.largest, f.budgets) {
            // The rollout audit or the leave-one-out alone.
            (None, None) if f.rollout.is_some() || f.leave_one_out.is_some() => None,
            (Some(_), Some(_)) => {
                self.error(
                    "holdout.budgets",
                    "give either `largest` or `budgets`, not both",
                );
                None
            }
            (None, None) => {
                self.error(
                    "holdout",
                    "empty: give `largest: k` (model sizes), `budgets: k` (IsoFLOP budgets), \
                     `epochs_above: k` (runs past k epochs), `rollout: sizes` or \
                     `leave_one_out: tokens`",
                );
                None
            }
            (Some(Count(k)), None) => {
                if k == 0 {
                    self.error(
                        "holdout.largest",
                        "must be at least 1 (or remove `holdout`)",
                    );
                    return None;
                }
                if let Some(Source::Train(plan)) = source {
                    let n = plan.model.sizes.len() as u64;
                    if k + 2 > n {
                        self.error(
                            "holdout.largest",
                            format!(
                                "holding out {k} of {n} sizes leaves fewer than 2 to fit; \
                                 add sizes or hold out fewer"
                            ),
                        );
                        return None;
                    }
                }
                Some(Holdout::Largest(k))
            }
            (None, Some(Count(k))) => {
                let budgets = match source {
                    Some(Source::Train(plan)) => match &plan.sweep {
                        Sweep::IsoFlop { budgets, .. } => Some(budgets.len() as u64),
                        Sweep::Grid { .. } => None,
                    },
                    Some(Source::Import(_)) => None,
                    // The sweep itself was invalid and already reported.
                    None => return None,
                };
                let Some(n) = budgets else {
                    self.error(
                        "holdout.budgets",
                        "needs an `isoflop:` sweep; use `largest: k` to hold out model sizes",
                    );
                    return None;
                };
                if k == 0 || k + 2 > n {
                    self.error(
                        "holdout.budgets",
                        format!("must leave at least 2 of the {n} budgets to fit, found {k}"),
                    );
                    return None;
                }
                Some(Holdout::Budgets(k))
            }
        }
    }

    pub(super) fn final_run(
        &mut self,
        f: &FinalFile,
        fits: &[FitSpec],
        source: Option<&Source>,
    ) -> Option<FinalSpec> {
        let budget = self.real("final.budget", Some(f.budget), 0.0, "positive", |x| x > 0.0);
        let law = f.law.unwrap_or(LawKind::Chinchilla);
        if law == LawKind::Auto && !fits.iter().any(|fit| fit.law() == LawKind::Chinchilla) {
            self.error(
                "final.law",
                "`auto` chooses among the fitted Chinchilla forms and the over-training law: add \
                 `- { law: chinchilla }` to `fits`",
            );
            return None;
        }
        if !matches!(law, LawKind::Chinchilla | LawKind::Isoflop | LawKind::Auto) {
            self.error(
                "final.law",
                format!(
                    "law `{}` does not give a compute-optimal allocation; use chinchilla, isoflop or auto",
                    law_name(law)
                ),
            );
            return None;
        }
        if law != LawKind::Auto && !fits.iter().any(|fit| fit.law() == law) {
            self.error(
                "final.law",
                format!(
                    "law `{}` is not among the study's fits; add `- {{ law: {} }}` to `fits`",
                    law_name(law),
                    law_name(law)
                ),
            );
            return None;
        }
        let batches = match source {
            Some(Source::Train(plan)) => plan.batch_sizes.clone(),
            // An invalid training section was reported already; judge nothing against it.
            None if f.compare_batch.is_some() => return None,
            _ => Vec::new(),
        };
        let compare_batch = match (f.compare_batch, &batches[..]) {
            (Some(Count(b)), many) if many.len() > 1 => {
                if !many.contains(&b) {
                    self.error(
                        "final.compare_batch",
                        format!("{b} is not one of the swept batch sizes {many:?}"),
                    );
                    return None;
                }
                Some(b)
            }
            (Some(_), _) => {
                self.error(
                    "final.compare_batch",
                    "applies only to a batch sweep (`train.batch` a list of 2 or more)",
                );
                return None;
            }
            (None, many) if many.len() > 1 => Some(many[(many.len() - 1) / 2]),
            (None, _) => None,
        };
        let limits = self.final_limits(f, fits, law)?;
        Some(FinalSpec {
            budget,
            law,
            compare_batch,
            inference_tokens: limits.inference_tokens,
            max_params: limits.max_params,
            max_memory_bytes: limits.max_memory_bytes,
            max_wall_seconds: limits.max_wall_seconds,
            unique_tokens: self.final_unique_tokens(f, fits),
        })
    }

    pub(super) fn report(&mut self, f: Option<&ReportFile>) -> Vec<Section> {
        let Some(sections) = f.and_then(|r| r.sections.as_ref()) else {
            return Vec::new();
        };
        if sections.is_empty() {
            self.error(
                "report.sections",
                "empty list: remove `sections` for the default report, or list sections",
            );
        }
        let mut out = Vec::new();
        for (i, s) in sections.iter().enumerate() {
            let field = format!("report.sections[{i}]");
            let given = [&s.text, &s.chart, &s.table]
                .iter()
                .filter(|x| x.is_some())
                .count();
            if given != 1 {
                self.error(
                    field,
                    format!("give exactly one of `text`, `chart` or `table` (found {given})"),
                );
                continue;
            }
            if let Some(text) = &s.text {
                if let Err(why) = crate::report::template::check_template(text) {
                    self.error(format!("{field}.text"), format!("template error: {why}"));
                    continue;
                }
                out.push(Section::Text(text.clone()));
            } else if let Some(chart) = &s.chart {
                if self.known_id(&format!("{field}.chart"), chart, &CHART_IDS, "chart") {
                    out.push(Section::Chart(chart.clone()));
                }
            } else if let Some(table) = &s.table
                && self.known_id(&format!("{field}.table"), table, &TABLE_IDS, "table")
            {
                out.push(Section::Table(table.clone()));
            }
        }
        out
    }

    pub(super) fn known_id(&mut self, field: &str, id: &str, known: &[&str], what: &str) -> bool {
        if known.contains(&id) {
            return true;
        }
        let hint = did_you_mean(id, known.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        self.error(
            field,
            format!(
                "unknown {what} `{id}`{hint}; expected one of {}",
                known.join(", ")
            ),
        );
        false
    }

    pub(super) fn checks(&mut self, checks: Vec<String>) -> Vec<String> {
        for (i, c) in checks.iter().enumerate() {
            if c.trim().is_empty() {
                self.error(format!("checks[{i}]"), "empty check expression");
            } else if let Err(why) = crate::report::template::check_expression(c) {
                self.error(format!("checks[{i}]"), format!("expression error: {why}"));
            }
        }
        checks
    }
}

fn default_fit(law: LawKind) -> FitFile {
    FitFile {
        law,
        bootstrap: None,
        confidence: None,
        delta: None,
        grid: None,
        bootstrap_starts: None,
        e: None,
        estimator: None,
        params: None,
        x: None,
        form: None,
        burn_in: None,
        curve_informed: None,
        train_loss: None,
        metrics: None,
        predict: None,
        task_loss: None,
    }
}

/// The study-file spelling of a law.
pub fn law_name(law: LawKind) -> &'static str {
    match law {
        LawKind::Chinchilla => "chinchilla",
        LawKind::Isoflop => "isoflop",
        LawKind::Frontier => "frontier",
        LawKind::Power => "power",
        LawKind::Cost => "cost",
        LawKind::Curve => "curve",
        LawKind::Overtrain => "overtrain",
        LawKind::DataConstrained => "data_constrained",
        LawKind::Metric => "metric",
        LawKind::Auto => "auto",
    }
}
