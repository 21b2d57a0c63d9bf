//! The whole-curve law in the chapter: the `curve` table (each group's law, every run's
//! held-out error, the runs the law could not use, and the curve-informed L(N, D) beside the
//! endpoint law) and the `curve` chart (measured held-out curves against their predictions).

use super::Input;
use super::charts::size_colours;
use super::format::{human, interval, pct, sig};
use super::plot::{Mark, Panel, Series, colour};
use super::tables::table;
use super::template::escape_markdown;
use crate::fit::curve::{CurveForm, CurveReport, HELDOUT_TARGET};

const NO_LAW: &str = "*No curve law: add `{ law: curve }` to the study's `fits:`.*\n";

pub fn table_md(input: &Input) -> String {
    let Some(c) = &input.fits.curve else {
        return NO_LAW.into();
    };
    let mut out = intro(c);
    out.push_str(&laws(c));
    out.push_str(&heldout(c));
    if !c.unusable.is_empty() {
        out.push_str("\nRuns the curve law could not use:\n\n");
        let rows = c
            .unusable
            .iter()
            .map(|u| {
                vec![
                    format!("`{}`", escape_markdown(&u.run)),
                    escape_markdown(&u.reason),
                ]
            })
            .collect();
        out.push_str(&table(&["run", "why"], rows));
    }
    out.push_str(&informed(c));
    out
}

fn intro(c: &CurveReport) -> String {
    let form = match c.form {
        CurveForm::MultiPower => {
            "the multi-power law (Luo et al. 2025), L(t) = L₀ + A·S₁(t)^−α − B·Σ_k (η_{k−1} − η_k)·(1 − (C·η_k^−γ·S_k(t) + 1)^−β)"
        }
        CurveForm::Annealing => {
            "the annealing law (Tissue et al. 2024), L(t) = L₀ + A·S₁(t)^−α − C·S₂(t)"
        }
    };
    format!(
        "Each size{} has its own whole-curve law, {form}, fitted to its runs' validation \
         points{} after the first {} of each run's steps, under the learning rate every step \
         had. S₁ is the area under the schedule.\n\n",
        if c.groups.iter().any(|g| g.group != g.size) {
            " and learning rate"
        } else {
            ""
        },
        if c.train_loss {
            " and binned training losses"
        } else {
            ""
        },
        pct(c.burn_in),
    )
}

fn laws(c: &CurveReport) -> String {
    let multi = c.form == CurveForm::MultiPower;
    let rows = c
        .groups
        .iter()
        .map(|g| {
            let p = &g.params;
            let mut row = vec![
                escape_markdown(&g.group),
                human(g.n),
                g.runs.len().to_string(),
                sig(p.l0, 4),
                sig(p.a, 3),
                sig(p.alpha, 3),
                sig(p.b, 3),
            ];
            if multi {
                row.push(p.beta.map_or("—".into(), |v| sig(v, 3)));
                row.push(p.gamma.map_or("—".into(), |v| sig(v, 3)));
                row.push(p.c.map_or("—".into(), |v| sig(v, 3)));
            }
            row.push(pct(p.rms_rel));
            row
        })
        .collect();
    let mut head = vec!["group", " N", " runs", " L₀", " A", " α"];
    if multi {
        head.extend([" B", " β", " γ", " C"]);
    } else {
        head.push(" C");
    }
    head.push(" rms residual");
    table(&head, rows)
}

fn heldout(c: &CurveReport) -> String {
    let Some((mean, worst)) = c.heldout_mean.zip(c.heldout_worst) else {
        return "\n*No held-out check: no run's curve could be predicted from the others.*\n"
            .into();
    };
    let met = mean <= HELDOUT_TARGET[0] && worst <= HELDOUT_TARGET[1];
    let mut out = format!(
        "\n**Held out.** Each run predicted by the law fitted without it — only on points no \
         fitted run contains — errors relative to its final loss: mean {} and worst {} over {} \
         runs ({} the targets of {} mean and {} worst).\n\n",
        pct(mean),
        pct(worst),
        c.heldout.len(),
        if met { "within" } else { "**outside**" },
        pct(HELDOUT_TARGET[0]),
        pct(HELDOUT_TARGET[1]),
    );
    let rows = c
        .heldout
        .iter()
        .map(|h| {
            vec![
                format!("`{}`", escape_markdown(&h.run)),
                escape_markdown(&h.fitted_on),
                h.tokens.len().to_string(),
                sig(*h.measured.last().unwrap_or(&f64::NAN), 5),
                sig(*h.predicted.last().unwrap_or(&f64::NAN), 5),
                pct(h.mean),
                pct(h.worst),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "run",
            "predicted from",
            " points",
            " final measured",
            " final predicted",
            " mean error",
            " worst error",
        ],
        rows,
    ));
    out
}

fn informed(c: &CurveReport) -> String {
    let Some(i) = &c.informed else {
        return String::new();
    };
    let mut out = format!(
        "\n**Curve-informed L(N, D).** The Chinchilla law fitted to {} predicted final losses \
         ({} token counts inside each of {} sizes' trained range, the best learning rate's \
         prediction at each) instead of one endpoint per run; {} % intervals from {} nested \
         bootstrap resamples that redraw whole runs or trunks per group and refit its curve \
         law{}. Curve-informed and endpoint laws are not ranked against each other.\n\n",
        i.points.len(),
        crate::fit::curve::informed::GRID_PER_SIZE,
        i.sizes,
        (i.confidence * 100.0).round(),
        i.bootstrap_resamples,
        if i.residual_groups.is_empty() {
            String::new()
        } else {
            format!(
                " ({} with one independent unit redraw blocks of their residuals instead)",
                i.residual_groups.len()
            )
        },
    );
    if i.against_endpoint.is_empty() {
        return out;
    }
    let rows = i
        .against_endpoint
        .iter()
        .map(|a| {
            vec![
                a.param.replace("alpha", "α").replace("beta", "β"),
                sig(a.endpoint, 4),
                interval(a.endpoint_ci, 4),
                sig(a.informed, 4),
                interval(a.informed_ci, 4),
                match a.overlap {
                    Some(true) => "yes".into(),
                    Some(false) => "**no**".into(),
                    None => "—".into(),
                },
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "parameter",
            " endpoint law",
            " interval",
            " curve-informed",
            " interval",
            " intervals overlap",
        ],
        rows,
    ));
    out
}

/// Measured held-out validation points against the curve law's predictions, one panel per
/// size (its best-fitting learning rate where swept).
pub fn chart(input: &Input) -> Result<Vec<Panel>, String> {
    let Some(c) = &input.fits.curve else {
        return Err("the study fits no curve law".into());
    };
    if c.heldout.is_empty() {
        return Err("no run's curve could be predicted from the others".into());
    }
    let colours = size_colours(input);
    let mut panels = Vec::new();
    let mut sizes: Vec<(f64, &str)> = c.groups.iter().map(|g| (g.n, g.group.as_str())).collect();
    sizes.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut seen = Vec::new();
    for (n, _) in sizes {
        if seen.contains(&n.to_bits()) {
            continue;
        }
        seen.push(n.to_bits());
        // The size's group whose held-out runs end lowest.
        let groups: Vec<&str> = c
            .groups
            .iter()
            .filter(|g| g.n == n)
            .map(|g| g.group.as_str())
            .collect();
        let size = c
            .groups
            .iter()
            .find(|g| g.n == n)
            .map_or("", |g| g.size.as_str());
        let best = groups
            .iter()
            .filter_map(|g| {
                let low = c
                    .heldout
                    .iter()
                    .filter(|h| h.group == *g)
                    .filter_map(|h| h.measured.last().copied())
                    .fold(f64::INFINITY, f64::min);
                low.is_finite().then_some((*g, low))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((group, _)) = best else { continue };
        let ci = colours.get(size).copied().unwrap_or(panels.len());
        let mut p = Panel::new(group, "tokens", "validation loss (nats/token)");
        p.x_log = true;
        for (k, h) in c.heldout.iter().filter(|h| h.group == group).enumerate() {
            let label = |what: &str| (k == 0).then(|| what.to_string());
            let measured = h
                .tokens
                .iter()
                .copied()
                .zip(h.measured.iter().copied())
                .collect();
            let predicted = h
                .tokens
                .iter()
                .copied()
                .zip(h.predicted.iter().copied())
                .collect();
            p.series.push(Series::new(
                label("measured (held out)"),
                Mark::Rings,
                colour(ci),
                measured,
            ));
            p.series.push(Series::new(
                label("predicted"),
                Mark::Dashed,
                colour(ci),
                predicted,
            ));
        }
        panels.push(p);
    }
    Ok(panels)
}
