//! `train.lr_transfer`: which sizes sweep the learning rate, and how the others get theirs.

use super::Validator;
use crate::study::file::{LrTransferFile, TransferRuleName};
use crate::study::{LrTransfer, Sweep, TrainingPlan, TransferRule};

impl Validator {
    pub(super) fn lr_transfer(
        &mut self,
        f: &LrTransferFile,
        plan: &TrainingPlan,
    ) -> Option<LrTransfer> {
        let before = self.error_count();
        if plan.learning_rates.len() < 2 {
            self.error(
                "train.lr_transfer",
                "needs a learning-rate sweep: give `train.lr` as a list of at least two values \
                 (three or more let the optimum be refined between them)",
            );
        }
        if !matches!(plan.sweep, Sweep::Grid { .. }) {
            self.error(
                "train.lr_transfer",
                "only with a `tokens:` grid: the transfer carries each token count's optimum \
                 to the other sizes, and `isoflop:` sizes share no token counts",
            );
        }
        if plan.branching.is_some() {
            self.error(
                "train.lr_transfer",
                "not with `branches: true`: a size's branches share one trunk, trained at one \
                 learning rate before any sweep has finished",
            );
        }
        let mup = !plan.model.parametrization.is_standard();
        let rule = match f.rule {
            Some(TransferRuleName::Mup) => TransferRule::Mup,
            Some(TransferRuleName::Law) => TransferRule::Law,
            None if mup => TransferRule::Mup,
            None => TransferRule::Law,
        };
        if rule == TransferRule::Mup && !mup {
            self.error(
                "train.lr_transfer.rule",
                "`mup` carries the swept optimum to other widths, which holds under \
                 `model.parametrization: mup` only (under the standard parametrisation the \
                 optimum falls as the width grows): use `rule: law`, or µP",
            );
        }
        let swept = self.size_list(plan, "train.lr_transfer.sweep", &f.sweep);
        let checked = self.size_list(plan, "train.lr_transfer.check", &f.check);
        if f.sweep.is_empty() {
            self.error(
                "train.lr_transfer.sweep",
                "empty list: name at least one size (from `model.sizes`) to sweep",
            );
        }
        for (i, c) in checked.iter().enumerate() {
            if swept.contains(c) {
                self.error(
                    format!("train.lr_transfer.check[{i}]"),
                    format!(
                        "`{}` is swept already: `check` names transferred sizes to sweep as well",
                        plan.model.sizes[*c].name
                    ),
                );
            }
        }
        if !swept.is_empty() && swept.len() == plan.model.sizes.len() {
            self.error(
                "train.lr_transfer.sweep",
                "every size is swept, so nothing is transferred: drop `train.lr_transfer`",
            );
        }
        if rule == TransferRule::Law && swept.len() < 2 {
            self.error(
                "train.lr_transfer.sweep",
                "`rule: law` fits η*(N, D) = c·N^a·D^b across sizes: sweep at least two sizes",
            );
        }
        (self.error_count() == before).then_some(LrTransfer {
            swept,
            checked,
            rule,
        })
    }

    /// Size names → indices into `model.sizes`, each named once.
    fn size_list(&mut self, plan: &TrainingPlan, field: &str, names: &[String]) -> Vec<usize> {
        let sizes = &plan.model.sizes;
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match sizes.iter().position(|s| &s.name == name) {
                Some(index) if out.contains(&index) => {
                    self.error(format!("{field}[{i}]"), format!("`{name}` is listed twice"))
                }
                Some(index) => out.push(index),
                None => {
                    let known: Vec<&str> = sizes.iter().map(|s| s.name.as_str()).collect();
                    self.error(
                        format!("{field}[{i}]"),
                        format!(
                            "no size named `{name}` in `model.sizes` (its sizes: {})",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        out
    }
}
