//! The loss–cost Pareto front of a final run placed under `final:` limits (a lifetime of
//! inference tokens, a parameter cap, a memory limit): for every total budget, the best loss
//! the law allows under the limits, beside the training-optimal models charged for the same
//! lifetime of inference — how much a model sized for training alone overpays once it serves.
//! Under a wall-time limit, a second front: for every training wall time on this machine, the
//! best loss the law allows, beside the FLOP-optimal models at their predicted time.

use super::Input;
use super::charts::{CURVE_POINTS, log_space};
use super::plot::{Mark, Panel, Series, colour};
use crate::fit::chinchilla::{Law, allocate};
use crate::fit::constrained::{for_total_flops, for_wall_time};

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

/// A front panel: the best loss at each cost, the comparison models at theirs (dashed), and
/// the final run's optimum.
fn front_panel(
    (title, x_label): (&str, &str),
    (front_label, front): (&str, Vec<(f64, f64)>),
    (naive_label, naive): (&str, Vec<(f64, f64)>),
    chosen: (f64, f64),
) -> Panel {
    let mut panel = Panel::new(title, x_label, "predicted loss");
    for (k, (label, mark, points)) in [
        (front_label, Mark::Line, front),
        (naive_label, Mark::Dashed, naive),
        ("final run's optimum", Mark::Crosses, vec![chosen]),
    ]
    .into_iter()
    .enumerate()
    {
        let c = colour([0, 1, 3][k]);
        panel
            .series
            .push(Series::new(Some(label.into()), mark, c, points));
    }
    panel
}

/// The Pareto panel, when the final run was placed under limits.
pub fn panel(input: &Input) -> Option<Panel> {
    let f = input.final_run.as_ref()?;
    let placed = f.limits.as_ref()?;
    let spec = input.study.final_run.as_ref()?;
    let law = final_law(input)?;
    let limits = spec.limits(input.fits.cost.as_ref()).ok()?;
    let total = placed.training_flops + placed.inference_flops;
    let cs = log_space(total / 30.0, total * 10.0, CURVE_POINTS);
    let front: Vec<(f64, f64)> = cs
        .iter()
        .filter_map(|&c| for_total_flops(&law, c, &limits).map(|o| (c, o.loss)))
        .collect();
    // A model sized for training alone at budget c costs c + 2N·I over its lifetime.
    let naive: Vec<(f64, f64)> = cs
        .iter()
        .map(|&c| {
            let a = allocate(&law, c);
            (c + 2.0 * a.n_opt * spec.inference_tokens, a.loss)
        })
        .filter(|(c, _)| *c <= total * 10.0)
        .collect();
    Some(front_panel(
        (
            "Loss against total cost (training + inference)",
            "total compute: 6ND + 2N·I (FLOPs)",
        ),
        ("best under the limits", front),
        ("training-optimal, with its inference", naive),
        (total, placed.loss),
    ))
}

/// The wall-time panel, when `final.max_wall_seconds` placed the final run through the time
/// law.
pub fn wall_panel(input: &Input) -> Option<Panel> {
    let f = input.final_run.as_ref()?;
    let placed = f.limits.as_ref()?;
    let spec = input.study.final_run.as_ref()?;
    spec.max_wall_seconds?;
    let time = input.fits.cost.as_ref()?.wall_seconds?;
    let law = final_law(input)?;
    let at = placed.wall_seconds?;
    let front: Vec<(f64, f64)> = log_space(at / 30.0, at * 10.0, CURVE_POINTS)
        .into_iter()
        .filter_map(|t| for_wall_time(&law, &time, t, spec.max_params).map(|o| (t, o.loss)))
        .collect();
    // The FLOP-optimal model of each budget, at the time the law forecasts for it.
    let flops = placed.training_flops;
    let naive: Vec<(f64, f64)> = log_space(flops / 100.0, flops * 30.0, CURVE_POINTS)
        .into_iter()
        .map(|c| {
            let a = allocate(&law, c);
            (time.predict(a.n_opt, a.d_opt), a.loss)
        })
        .filter(|(t, _)| (at / 30.0..=at * 10.0).contains(t))
        .collect();
    Some(front_panel(
        (
            "Loss against training wall time (this machine)",
            "predicted training wall time (seconds)",
        ),
        ("best in each wall time", front),
        ("FLOP-optimal, at its time", naive),
        (at, placed.loss),
    ))
}
