//! What a law's data must know: the unique tokens `law: data_constrained` and
//! `holdout.epochs_above` need, the entropy a chinchilla fit's `E: entropy` pins, and the
//! laws the final run's limits read.

use super::Validator;
use crate::fit::options::PinnedE;
use crate::study::file::{FinalFile, FloorFile, HoldoutFile, LawKind};
use crate::study::units::Count;
use crate::study::{DataSpec, FitSpec, Holdout, Source};

/// `final:`'s limits beyond the FLOP budget, validated.
pub(super) struct FinalLimits {
    pub inference_tokens: f64,
    pub max_params: Option<f64>,
    pub max_memory_bytes: Option<f64>,
    pub max_wall_seconds: Option<f64>,
}

impl Validator {
    /// `final.unique_tokens`: positive, and answered by the data-constrained law.
    pub(super) fn final_unique_tokens(&mut self, f: &FinalFile, fits: &[FitSpec]) -> Option<f64> {
        let Count(u) = f.unique_tokens?;
        if u == 0 {
            self.error("final.unique_tokens", "must be positive");
            return None;
        }
        if !fits.iter().any(|s| s.law() == LawKind::DataConstrained) {
            self.error(
                "final.unique_tokens",
                "needs the data-constrained law to answer it: add \
                 `- { law: data_constrained }` to `fits`",
            );
            return None;
        }
        Some(u as f64)
    }

    /// `final.inference_tokens`, `final.max_params`, `final.max_memory_bytes`,
    /// `final.max_wall_seconds`: finite and positive, on a Chinchilla-form law; memory and wall
    /// time need the cost law. `None` after an error.
    pub(super) fn final_limits(
        &mut self,
        f: &FinalFile,
        fits: &[FitSpec],
        law: LawKind,
    ) -> Option<FinalLimits> {
        let before = self.error_count();
        let inference = self.real(
            "final.inference_tokens",
            f.inference_tokens,
            0.0,
            "≥ 0 (tokens served over the model's lifetime)",
            |x| x >= 0.0,
        );
        let mut positive = |field: &str, v: Option<Count>| {
            v.and_then(|Count(x)| {
                if x == 0 {
                    self.error(field, "must be positive");
                    None
                } else {
                    Some(x as f64)
                }
            })
        };
        let max_params = positive("final.max_params", f.max_params);
        let max_memory = positive("final.max_memory_bytes", f.max_memory_bytes);
        let max_wall = f.max_wall_seconds.map(|_| {
            self.real(
                "final.max_wall_seconds",
                f.max_wall_seconds,
                0.0,
                "a positive number of seconds",
                |x| x.is_finite() && x > 0.0,
            )
        });
        let limited =
            inference > 0.0 || max_params.is_some() || max_memory.is_some() || max_wall.is_some();
        if limited && law == LawKind::Isoflop {
            self.error(
                "final.law",
                "`inference_tokens`, `max_params`, `max_memory_bytes` and `max_wall_seconds` \
                 place the final run through L(N, D): use `law: chinchilla`",
            );
        }
        let has_cost = fits.iter().any(|s| matches!(s, FitSpec::Cost));
        for (key, set, what) in [
            ("final.max_memory_bytes", max_memory.is_some(), "memory"),
            ("final.max_wall_seconds", max_wall.is_some(), "wall-time"),
        ] {
            if set && !has_cost {
                self.error(
                    key,
                    format!("needs the {what} law: add `- {{ law: cost }}` to `fits`"),
                );
            }
        }
        (self.error_count() == before).then_some(FinalLimits {
            inference_tokens: inference,
            max_params,
            max_memory_bytes: max_memory,
            max_wall_seconds: max_wall,
        })
    }

    /// `E:` of a chinchilla fit: a finite floor ≥ 0, or `entropy` of a synthetic language
    /// (the only data whose entropy rate is known).
    pub(super) fn pinned_floor(
        &mut self,
        field: &str,
        e: FloorFile,
        source: Option<&Source>,
    ) -> Option<PinnedE> {
        match e {
            FloorFile::Value(v) if v.is_finite() && v >= 0.0 => Some(PinnedE::Value(v)),
            FloorFile::Value(v) => {
                self.error(
                    format!("{field}.E"),
                    format!("must be a finite number ≥ 0 (a loss floor in nats/token), found {v}"),
                );
                None
            }
            FloorFile::Entropy => match source {
                Some(Source::Train(plan)) if matches!(plan.data, DataSpec::Synthetic(_)) => {
                    Some(PinnedE::Entropy)
                }
                // An invalid source was reported already.
                None => None,
                Some(_) => {
                    self.error(
                        format!("{field}.E"),
                        "`entropy` needs data whose entropy rate is known (the built-in \
                         synthetic languages); give the floor as a number instead",
                    );
                    None
                }
            },
        }
    }

    /// `law: data_constrained` needs runs that know their unique tokens: imported results
    /// with a unique-token or epochs column, or runs trained on a corpus (a synthetic
    /// language never repeats).
    pub(super) fn repeated_data_source(&mut self, field: &str, source: Option<&Source>) {
        match source {
            Some(Source::Import(r)) if r.unique.is_none() => self.error(
                format!("{field}.law"),
                "law `data_constrained` needs the runs' unique tokens: add \
                 `results.columns.unique_tokens` or `results.columns.epochs`",
            ),
            Some(Source::Train(plan)) if matches!(plan.data, DataSpec::Synthetic(_)) => self.error(
                format!("{field}.law"),
                "law `data_constrained` needs runs that repeat their data; a synthetic \
                     language draws fresh tokens for every run (train on `data: { source: text }` \
                     or `tokens`, or import results with unique tokens)",
            ),
            _ => {}
        }
    }

    /// `holdout.epochs_above: k`: alone, k ≥ 1, on runs that record their unique tokens.
    pub(super) fn epochs_holdout(
        &mut self,
        f: &HoldoutFile,
        k: u64,
        source: Option<&Source>,
    ) -> Option<Holdout> {
        if f.largest.is_some() || f.budgets.is_some() {
            self.error(
                "holdout.epochs_above",
                "give one of `largest`, `budgets` or `epochs_above`, not several",
            );
            return None;
        }
        if k == 0 {
            self.error(
                "holdout.epochs_above",
                "must be at least 1 (every run trains for at least one epoch's worth)",
            );
            return None;
        }
        match source {
            Some(Source::Import(r)) if r.unique.is_some() => Some(Holdout::EpochsAbove(k)),
            Some(Source::Import(_)) => {
                self.error(
                    "holdout.epochs_above",
                    "needs the runs' unique tokens: add `results.columns.unique_tokens` or \
                     `results.columns.epochs`",
                );
                None
            }
            Some(Source::Train(plan)) if matches!(plan.data, DataSpec::Synthetic(_)) => {
                self.error(
                    "holdout.epochs_above",
                    "needs runs that repeat their data; a synthetic language draws fresh \
                     tokens for every run",
                );
                None
            }
            Some(Source::Train(_)) => Some(Holdout::EpochsAbove(k)),
            None => None,
        }
    }
}
