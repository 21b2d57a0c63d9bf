//! The loss–cost Pareto front of a final run placed under `final:` limits (a lifetime of
//! inference tokens, a parameter cap, a memory limit): for every total budget, the best loss
//! the law allows under the limits, beside the training-optimal models charged for the same
//! lifetime of inference — how much a model sized for training alone overpays once it serves.

use super::Input;
use super::charts::{CURVE_POINTS, log_space};
use super::plot::{Mark, Panel, Series, colour};
use crate::fit::chinchilla::{Law, allocate};
use crate::fit::constrained::{Limits, for_total_flops};

/// The law that placed the final run: the pinned or reduced one its `law` names, else the
/// free-E law.
fn final_law(input: &Input) -> Option<Law> {
    let c = input.fits.chinchilla.as_ref()?;
    let f = input.final_run.as_ref()?;
    if f.law == "overtrain" {
        return input.fits.overtrain.as_ref().map(|o| o.chinchilla_form);
    }
    let form = f
        .law
        .strip_prefix("chinchilla (")
        .and_then(|s| s.strip_suffix(')'));
    Some(match form {
        Some("pinned_e") => c.pinned.as_ref()?.law,
        Some(form) => c.reduced.iter().find(|r| r.form == form)?.law,
        None => c.law(),
    })
}

/// The Pareto panel, when the final run was placed under limits.
pub fn panel(input: &Input) -> Option<Panel> {
    let f = input.final_run.as_ref()?;
    let placed = f.limits.as_ref()?;
    let spec = input.study.final_run.as_ref()?;
    let law = final_law(input)?;
    let memory = spec.max_memory_bytes.and_then(|limit| {
        let m = input.fits.cost.as_ref()?.peak_rss_bytes?;
        Some((m, limit))
    });
    let limits = Limits {
        inference_tokens: spec.inference_tokens,
        max_params: spec.max_params,
        memory,
    };
    let total = placed.training_flops + placed.inference_flops;
    let cs = log_space(total / 30.0, total * 10.0, CURVE_POINTS);
    let mut panel = Panel::new(
        "Loss against total cost (training + inference)",
        "total compute: 6ND + 2N·I (FLOPs)",
        "predicted loss",
    );
    let front: Vec<(f64, f64)> = cs
        .iter()
        .filter_map(|&c| for_total_flops(&law, c, &limits).map(|o| (c, o.loss)))
        .collect();
    panel.series.push(Series::new(
        Some("best under the limits".into()),
        Mark::Line,
        colour(0),
        front,
    ));
    // A model sized for training alone at budget c costs c + 2N·I over its lifetime.
    let naive: Vec<(f64, f64)> = cs
        .iter()
        .map(|&c| {
            let a = allocate(&law, c);
            (c + 2.0 * a.n_opt * spec.inference_tokens, a.loss)
        })
        .filter(|(c, _)| *c <= total * 10.0)
        .collect();
    panel.series.push(Series::new(
        Some("training-optimal, with its inference".into()),
        Mark::Dashed,
        colour(1),
        naive,
    ));
    panel.series.push(Series::new(
        Some("final run's optimum".into()),
        Mark::Crosses,
        colour(3),
        vec![(total, placed.loss)],
    ));
    Some(panel)
}
