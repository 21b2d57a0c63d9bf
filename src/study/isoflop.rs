//! IsoFLOP sweeps: one compute budget becomes a token count per size.

use super::plan::{ISOFLOP_AUTO_TPP, gpt_config, steps_for};
use super::{IsoFlopSizes, ModelSpec};
use crate::model::{param_counts, train_flops_per_token};

/// A budget too small for even the cheapest size.
#[derive(Debug, Clone, PartialEq)]
pub struct ShortBudget {
    pub name: String,
    pub tokens: u64,
}

/// The sizes (by index into `ModelSpec::sizes`) and token counts one IsoFLOP budget trains.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetExpansion {
    pub points: Vec<(usize, u64)>,
    pub too_small: Option<ShortBudget>,
}

/// Expand one budget C: each size gets D = C / (exact training FLOPs per token), so every run
/// of the budget really costs C (Hoffmann et al. 2022 use C ≈ 6ND; the exact count keeps
/// attention, which dominates at small widths, inside the budget).
pub fn expand_budget(
    budget: f64,
    model: &ModelSpec,
    vocab: u64,
    batches: &[u64],
    mode: IsoFlopSizes,
) -> BudgetExpansion {
    let step = super::step_unit(batches, model.context);
    let mut points = Vec::new();
    let mut cheapest: Option<(f64, usize)> = None;
    for index in 0..model.sizes.len() {
        let cfg = gpt_config(model, index, vocab);
        let per_token = train_flops_per_token(&cfg);
        if cheapest.is_none_or(|(best, _)| per_token < best) {
            cheapest = Some((per_token, index));
        }
        let tokens = budget / per_token;
        if tokens < step as f64 {
            continue;
        }
        let steps = steps_for(tokens as u64, step);
        let tokens = steps * step;
        if mode == IsoFlopSizes::Auto {
            let tpp = tokens as f64 / param_counts(&cfg).total as f64;
            if tpp < ISOFLOP_AUTO_TPP.0 || tpp > ISOFLOP_AUTO_TPP.1 {
                continue;
            }
        }
        points.push((index, tokens));
    }
    let too_small = match cheapest {
        Some((per_token, index)) if budget / per_token < step as f64 => Some(ShortBudget {
            name: model.sizes[index].name.clone(),
            tokens: (budget / per_token) as u64,
        }),
        _ => None,
    };
    BudgetExpansion { points, too_small }
}
