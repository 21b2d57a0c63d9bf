//! What a law's data must know: the unique tokens `law: data_constrained` and
//! `holdout.epochs_above` need, and the entropy a chinchilla fit's `E: entropy` pins.

use super::Validator;
use crate::fit::options::PinnedE;
use crate::study::file::{FloorFile, HoldoutFile};
use crate::study::{DataSpec, Holdout, Source};

impl Validator {
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
