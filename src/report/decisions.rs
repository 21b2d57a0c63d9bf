//! The `decisions` table: which recipe the laws predict best at the target scale, with the
//! bootstrap's probability, beside what the runs there measured; and how often a decision
//! taken at a smaller scale — by ranking the recipes there, or by their laws fitted up to
//! there — chose the recipe that is better at the largest size.

use super::Input;
use super::format::{human, pct, sig};
use super::tables::table;
use crate::fit::decisions::{Accuracy, DecisionReport};

fn share(a: &Accuracy) -> String {
    match a.share {
        Some(s) => format!("{} ({} of {})", pct(s), a.agree, a.total),
        None => "no decision to score".into(),
    }
}

/// The table and its words.
pub fn table_md(input: &Input) -> String {
    let Some(d) = &input.fits.decisions else {
        return "*No decisions: compare the recipes of imported runs with `variants:`.*\n".into();
    };
    words(d)
}

fn words(d: &DecisionReport) -> String {
    let what = if d.by == "loss" {
        "the loss".to_string()
    } else {
        format!("the error, 1 − the mean of {} metric(s)", d.metrics.len())
    };
    let mut out = format!(
        "Recipes compared by {what} (lower is better) at N = {}, D = {}: each recipe's \
         Chinchilla law (fitted by variable projection{}) predicts it there, with the {} % \
         interval and each recipe's share of {} bootstrap resamples in which it predicts \
         best.\n\n",
        human(d.target[0]),
        human(d.target[1]),
        if d.by == "loss" {
            ""
        } else {
            ", carried to the error by its error-from-loss law"
        },
        (d.confidence * 100.0).round(),
        d.bootstrap_resamples,
    );
    let rows = d
        .variants
        .iter()
        .map(|v| {
            vec![
                format!("`{}`", v.name),
                v.runs.to_string(),
                v.sizes.to_string(),
                v.predicted.map_or("—".into(), |p| sig(p, 4)),
                v.predicted_ci.map_or("—".into(), |[lo, hi]| {
                    format!("[{}, {}]", sig(lo, 4), sig(hi, 4))
                }),
                pct(v.p_best),
                v.measured.map_or("—".into(), |m| sig(m, 4)),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "recipe",
            "runs",
            "sizes",
            "predicted",
            "interval",
            "P(best)",
            "measured",
        ],
        rows,
    ));
    if let (Some(w), Some(p)) = (&d.winner, d.probability) {
        out.push_str(&format!(
            "\nThe laws predict **`{w}`** best at the target, in {} of the bootstrap's resamples",
            pct(p)
        ));
        match &d.measured_winner {
            Some(m) if m == w => out.push_str("; its runs there agree.\n"),
            Some(m) => out.push_str(&format!("; its runs there measured `{m}` best.\n")),
            None => out.push_str(".\n"),
        }
    }
    out.push_str(&format!(
        "\n**Decision accuracy** over every pair of recipes and every smaller size both ran \
         (Magnusson et al. 2025): ranking them at that size chose the recipe that is better at \
         the largest size {}; their laws fitted up to that size chose it {}.\n",
        share(&d.single_scale),
        share(&d.law),
    ));
    out
}
