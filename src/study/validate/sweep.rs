//! The `train:` section and the sweep (`tokens:` grid or `isoflop:` budgets).

use std::collections::HashMap;

use super::Validator;
use crate::data::DataSpec;
use crate::study::file::{IsoFlopFile, IsoFlopSizes, ScheduleKind, TrainFile};
use crate::study::plan::{ISOFLOP_AUTO_TPP, expand_budget, steps_for};
use crate::study::units::{Count, Counts, Real, Reals};
use crate::study::{Branching, ModelSpec, Schedule, Sweep, TrainSpec, TrainingPlan, branches};

impl Validator {
    /// The training hyper-parameters, and every learning rate and batch size of the sweep
    /// (ascending; one value without a sweep, the first being the one in the returned spec).
    pub(super) fn train(
        &mut self,
        f: Option<&TrainFile>,
        context: u64,
    ) -> (TrainSpec, Vec<f64>, Vec<u64>) {
        let default = TrainFile {
            batch: None,
            lr: None,
            schedule: None,
            warmup: None,
            min_lr_ratio: None,
            decay: None,
            weight_decay: None,
            beta1: None,
            beta2: None,
            grad_clip: None,
            eval_every: None,
            eval_tokens: None,
            branches: None,
            compare: None,
            warmup_tokens: None,
            lr_transfer: None,
        };
        let f = f.unwrap_or(&default);
        let batches = self.batch_sizes(f.batch.as_ref());
        let batch = batches[0];
        let lrs = self.learning_rates(f.lr.as_ref());
        let lr = lrs[0];
        let warmup = self.real("train.warmup", f.warmup, 0.05, "in [0, 1)", |x| {
            (0.0..1.0).contains(&x)
        });
        let min_ratio = |v: &mut Self| {
            v.real(
                "train.min_lr_ratio",
                f.min_lr_ratio,
                0.1,
                "in [0, 1]",
                |x| (0.0..=1.0).contains(&x),
            )
        };
        let kind = f.schedule.unwrap_or(ScheduleKind::Cosine);
        if kind != ScheduleKind::Wsd {
            self.not_here("train.decay", &f.decay, "to this schedule (only to `wsd`)");
        }
        let schedule = match kind {
            ScheduleKind::Cosine => Schedule::Cosine {
                min_lr_ratio: min_ratio(self),
            },
            ScheduleKind::Wsd => {
                let decay = self.real("train.decay", f.decay, 0.2, "in (0, 1]", |x| {
                    x > 0.0 && x <= 1.0
                });
                if warmup + decay > 1.0 {
                    self.error(
                        "train.decay",
                        format!("warmup {warmup} + decay {decay} exceed the whole run (1.0)"),
                    );
                }
                Schedule::Wsd {
                    decay,
                    min_lr_ratio: min_ratio(self),
                }
            }
            ScheduleKind::Constant => {
                self.not_here(
                    "train.min_lr_ratio",
                    &f.min_lr_ratio,
                    "to a constant schedule",
                );
                Schedule::Constant
            }
        };
        let unit = "in [0, 1)";
        let spec = TrainSpec {
            batch,
            lr,
            schedule,
            warmup,
            weight_decay: self.real(
                "train.weight_decay",
                f.weight_decay,
                0.1,
                "in [0, 10]",
                |x| (0.0..=10.0).contains(&x),
            ),
            beta1: self.real("train.beta1", f.beta1, 0.9, unit, |x| {
                (0.0..1.0).contains(&x)
            }),
            beta2: self.real("train.beta2", f.beta2, 0.95, unit, |x| {
                (0.0..1.0).contains(&x)
            }),
            grad_clip: self.real(
                "train.grad_clip",
                f.grad_clip,
                1.0,
                "≥ 0 (0 disables)",
                |x| x >= 0.0,
            ),
            eval_every: self.count("train.eval_every", f.eval_every, 50, 1, u64::MAX),
            eval_tokens: self.count("train.eval_tokens", f.eval_tokens, 65536, 1, 1 << 32),
        };
        if context > 0 && spec.eval_tokens < context {
            self.error(
                "train.eval_tokens",
                format!(
                    "{} tokens is less than one sequence of the context ({context})",
                    spec.eval_tokens
                ),
            );
        }
        (spec, lrs, batches)
    }

    /// `train.batch`: one count or a list of distinct counts, each in 1..=65536; ascending.
    fn batch_sizes(&mut self, batch: Option<&Counts>) -> Vec<u64> {
        let values: Option<Vec<u64>> = batch.map(|Counts(v)| v.iter().map(|c| c.0).collect());
        let mut out = self.swept_values(
            "train.batch",
            values.as_deref(),
            16,
            "batch size",
            "between 1 and 65536",
            |v| (1..=1 << 16).contains(&v),
        );
        out.sort_unstable();
        out
    }

    /// `train.branches` and `train.compare`: whether trunks are shared, and the schedule of
    /// the independent runs to compare with.
    pub(super) fn branching(
        &mut self,
        f: Option<&TrainFile>,
        train: &TrainSpec,
    ) -> Option<Branching> {
        let f = f?;
        if !f.branches.unwrap_or(false) {
            self.not_here(
                "train.compare",
                &f.compare,
                "without `branches: true` (it compares branched runs with independent ones)",
            );
            return None;
        }
        let Schedule::Wsd { min_lr_ratio, .. } = train.schedule else {
            self.error(
                "train.branches",
                "needs `schedule: wsd`: only a warmup–stable–decay schedule has a stable phase \
                 that runs of different lengths share",
            );
            return None;
        };
        let compare = match f.compare {
            None => None,
            Some(ScheduleKind::Cosine) => Some(Schedule::Cosine { min_lr_ratio }),
            Some(ScheduleKind::Wsd) => Some(train.schedule),
            Some(ScheduleKind::Constant) => {
                self.error(
                    "train.compare",
                    "`constant` has no decay to compare with: use `cosine` or `wsd`",
                );
                None
            }
        };
        Some(Branching { compare })
    }

    /// `train.warmup_tokens`, if given (and then not `train.warmup` too).
    pub(super) fn warmup_tokens(&mut self, f: Option<&TrainFile>) -> Option<u64> {
        let f = f?;
        let tokens = f.warmup_tokens?;
        if f.warmup.is_some() {
            self.error(
                "train.warmup_tokens",
                "give `warmup` (a fraction of each run) or `warmup_tokens`, not both",
            );
        }
        Some(self.count("train.warmup_tokens", Some(tokens), 0, 0, 1 << 50))
    }

    /// A warmup shared by a size's runs (a fraction of its longest run with `branches`, or
    /// `warmup_tokens`) must end before its shortest run's decay starts (before its last
    /// step without a decay).
    pub(super) fn branch_points(&mut self, plan: &TrainingPlan) {
        let field = if plan.warmup_tokens.is_some() {
            "train.warmup_tokens"
        } else {
            "train.warmup"
        };
        for trunk in branches::trunks_by_size(plan) {
            let shortest = trunk.steps[0];
            let decay = branches::decay_steps(&plan.train, shortest).max(1);
            let start = shortest.saturating_sub(decay);
            if trunk.warmup > start {
                let what = match plan.warmup_tokens {
                    Some(t) => format!("{t} tokens for size"),
                    None => format!("{} of the longest run of size", plan.train.warmup),
                };
                self.error(
                    field,
                    format!(
                        "the warmup is {what} {} ({} steps), which reaches past the start of \
                         its shortest run's decay (step {start}); lower it or drop the \
                         shortest token count",
                        plan.model.sizes[trunk.size].name, trunk.warmup,
                    ),
                );
                return;
            }
        }
    }

    /// `train.lr`: one value or a list of distinct values, each in (0, 1]; ascending.
    fn learning_rates(&mut self, lr: Option<&Reals>) -> Vec<f64> {
        let values: Option<Vec<f64>> = lr.map(|Reals(v)| v.iter().map(|r| r.0).collect());
        let mut out = self.swept_values(
            "train.lr",
            values.as_deref(),
            3e-3,
            "learning rate",
            "in (0, 1]",
            |v| v > 0.0 && v <= 1.0,
        );
        out.sort_by(f64::total_cmp);
        out
    }

    /// One value or a list of distinct ones at `field`, each accepted by `ok` (described by
    /// `range`); `default` when absent, or when none is valid (after an error).
    fn swept_values<T: Copy + PartialEq + std::fmt::Display>(
        &mut self,
        field: &str,
        values: Option<&[T]>,
        default: T,
        what: &str,
        range: &str,
        ok: impl Fn(T) -> bool,
    ) -> Vec<T> {
        let Some(values) = values else {
            return vec![default];
        };
        if values.is_empty() {
            self.error(field, format!("empty list: give at least one {what}"));
            return vec![default];
        }
        let mut out = Vec::new();
        for (i, &v) in values.iter().enumerate() {
            let path = if values.len() == 1 {
                field.to_string()
            } else {
                format!("{field}[{i}]")
            };
            if !ok(v) {
                self.error(&path, format!("must be {range}, found {v}"));
            } else if out.contains(&v) {
                self.error(&path, format!("{v} is listed twice"));
            } else {
                out.push(v);
            }
        }
        if out.is_empty() {
            out.push(default);
        }
        out
    }

    pub(super) fn grid(
        &mut self,
        tokens: &[Count],
        batches: &[u64],
        context: u64,
    ) -> Option<Sweep> {
        if tokens.is_empty() {
            self.error("tokens", "empty list: give at least one token count");
            return None;
        }
        let step = crate::study::step_unit(batches, context);
        let before = self.error_count();
        let mut by_steps: HashMap<u64, usize> = HashMap::new();
        for (i, Count(d)) in tokens.iter().enumerate() {
            let field = format!("tokens[{i}]");
            if *d > super::MAX_TOKENS {
                self.error(
                    field,
                    format!(
                        "{d} tokens is more than the {:e} one run may train",
                        super::MAX_TOKENS as f64
                    ),
                );
                continue;
            }
            if *d < step {
                self.error(
                    field,
                    format!(
                        "{d} tokens is less than one step ({} × context {context} = {step} tokens)",
                        batch_words(batches)
                    ),
                );
                continue;
            }
            let steps = steps_for(*d, step);
            if let Some(why) = rounding_too_far(*d as f64, steps * step, batches, context) {
                self.error(field, why);
                continue;
            }
            if let Some(first) = by_steps.insert(steps, i) {
                self.error(
                    field,
                    format!(
                        "same number of steps ({steps}) as tokens[{first}]: counts are rounded to \
                         whole steps of {step} tokens"
                    ),
                );
            }
        }
        (self.error_count() == before).then(|| Sweep::Grid {
            tokens: tokens.iter().map(|c| c.0).collect(),
        })
    }

    pub(super) fn isoflop(
        &mut self,
        f: &IsoFlopFile,
        model: &ModelSpec,
        data: Option<&DataSpec>,
        batches: &[u64],
    ) -> Option<Sweep> {
        if f.budgets.is_empty() {
            self.error(
                "isoflop.budgets",
                "empty list: give at least one compute budget",
            );
            return None;
        }
        let mode = f.sizes.unwrap_or(IsoFlopSizes::Auto);
        let vocab = data.map(DataSpec::vocab).unwrap_or(256);
        let before = self.error_count();
        let mut seen: Vec<f64> = Vec::new();
        // Training FLOPs per token of the cheapest size: the most tokens a budget buys.
        let cheapest = (0..model.sizes.len())
            .map(|i| {
                crate::model::train_flops_per_token(&crate::study::plan::gpt_config(
                    model, i, vocab,
                ))
            })
            .fold(f64::INFINITY, f64::min);
        for (i, Real(c)) in f.budgets.iter().enumerate() {
            let field = format!("isoflop.budgets[{i}]");
            if *c <= 0.0 {
                self.error(field, format!("must be positive, found {c}"));
                continue;
            }
            if seen.contains(c) {
                self.error(field, format!("duplicate budget {c:e}"));
                continue;
            }
            seen.push(*c);
            if model.sizes.is_empty() {
                continue;
            }
            if *c / cheapest > super::MAX_TOKENS as f64 {
                self.error(
                    field,
                    format!(
                        "budget {c:e} FLOPs buys the smallest model {:.3e} tokens, more than the \
                         {:e} one run may train",
                        *c / cheapest,
                        super::MAX_TOKENS as f64
                    ),
                );
                continue;
            }
            let expansion = expand_budget(*c, model, vocab, batches, mode);
            let step = crate::study::step_unit(batches, model.context);
            if let Some((index, why)) = expansion.points.iter().find_map(|&(index, tokens)| {
                let per_token = crate::model::train_flops_per_token(
                    &crate::study::plan::gpt_config(model, index, vocab),
                );
                rounding_too_far(*c / per_token, tokens, batches, model.context)
                    .map(|why| (index, why))
            }) {
                self.error(field, format!("size {}: {why}", model.sizes[index].name));
                continue;
            }
            if let Some(short) = expansion.too_small {
                self.error(
                    field,
                    format!(
                        "budget {c:e} FLOPs buys only {} tokens for the smallest model ({}), less \
                         than one step of {step} tokens; raise the budget or shrink batch/context",
                        short.tokens, short.name
                    ),
                );
                continue;
            }
            if expansion.points.len() < 3 {
                let why = match mode {
                    IsoFlopSizes::Auto => format!(
                        "only {} size(s) have {}–{} tokens per parameter at this budget",
                        expansion.points.len(),
                        ISOFLOP_AUTO_TPP.0,
                        ISOFLOP_AUTO_TPP.1
                    ),
                    IsoFlopSizes::All => format!(
                        "only {} size(s) get at least one step at this budget",
                        expansion.points.len()
                    ),
                };
                self.warn(
                    field,
                    format!(
                        "{why}; an IsoFLOP parabola needs at least 3 (add sizes{})",
                        if mode == IsoFlopSizes::Auto {
                            " or set `sizes: all`"
                        } else {
                            ""
                        }
                    ),
                );
            }
        }
        (self.error_count() == before).then(|| Sweep::IsoFlop {
            budgets: f.budgets.iter().map(|r| r.0).collect(),
            sizes: mode,
        })
    }
}

/// `batch 16` or `the batch sizes 8, 16 and 32 (their least common multiple, 32)`.
fn batch_words(batches: &[u64]) -> String {
    match batches {
        [one] => format!("batch {one}"),
        many => format!(
            "the least common multiple ({}) of the batch sizes {}",
            crate::study::step_unit(many, 1),
            many.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// With several batch sizes every point's tokens are a whole number of steps of each (a
/// multiple of their least common multiple × context), the same for every batch; a count that
/// rounding moves more than [`crate::study::BATCH_ROUNDING`] is refused, naming the nearest
/// exact one. One batch size rounds to its nearest whole step as it always has.
fn rounding_too_far(wanted: f64, rounded: u64, batches: &[u64], context: u64) -> Option<String> {
    if batches.len() < 2 {
        return None;
    }
    let off = (rounded as f64 / wanted - 1.0).abs();
    (off > crate::study::BATCH_ROUNDING).then(|| {
        format!(
            "{wanted:.0} tokens is {:.1} % from the nearest count every swept batch divides into \
             whole steps ({rounded}: steps of {} × context {context} tokens); more than the \
             {} % allowed — give a multiple of {} tokens, or batch sizes with a smaller common \
             multiple",
            off * 100.0,
            batch_words(batches),
            crate::study::BATCH_ROUNDING * 100.0,
            crate::study::step_unit(batches, context)
        )
    })
}
