//! The chapter's comparison of branched WSD runs with the same points trained independently
//! (`train.compare`): the loss of every point both ways, every law parameter with both
//! intervals, and what each set of runs cost.

use super::Input;
use super::format::{interval, pct, sig};
use super::tables::table;
use super::template::escape_markdown;

/// Largest relative difference of a point's final loss between its branch and its
/// independent run that the chapter calls a match (Hägele et al. 2024 find a WSD cooldown
/// within about this of a cosine run of the same length).
pub const LOSS_TOLERANCE: f64 = 0.02;

/// One point's final loss both ways.
#[derive(Debug, Clone, PartialEq)]
pub struct PointPair {
    pub name: String,
    pub branched: f64,
    pub independent: f64,
}

impl PointPair {
    pub fn rel_difference(&self) -> f64 {
        (self.branched - self.independent) / self.independent
    }
}

/// One law parameter fitted both ways, with its bootstrap intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamPair {
    pub law: String,
    pub param: String,
    pub branched: f64,
    pub branched_ci: Option<[f64; 2]>,
    pub independent: f64,
    pub independent_ci: Option<[f64; 2]>,
}

impl ParamPair {
    /// Whether each value lies inside the other's interval (`None` without both intervals).
    pub fn agrees(&self) -> Option<bool> {
        let inside = |v: f64, ci: [f64; 2]| ci[0] <= v && v <= ci[1];
        Some(
            inside(self.branched, self.independent_ci?)
                && inside(self.independent, self.branched_ci?),
        )
    }
}

/// Branched runs against independent ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The independent runs' schedule (`cosine`, `wsd`).
    pub schedule: String,
    /// Points with a finished run both ways, in plan order.
    pub points: Vec<PointPair>,
    /// Independent runs not (or not successfully) trained yet.
    pub missing: usize,
    pub params: Vec<ParamPair>,
    /// Σ run time × threads of each set's records.
    pub branched_cpu_seconds: f64,
    pub independent_cpu_seconds: f64,
}

impl Comparison {
    /// The largest and mean absolute relative difference of the points' losses.
    pub fn loss_differences(&self) -> Option<(f64, f64)> {
        if self.points.is_empty() {
            return None;
        }
        let d: Vec<f64> = self
            .points
            .iter()
            .map(|p| p.rel_difference().abs())
            .collect();
        Some((
            d.iter().copied().fold(0.0, f64::max),
            d.iter().sum::<f64>() / d.len() as f64,
        ))
    }
}

/// The `branches` table: the comparison, or why there is none.
pub fn table_md(input: &Input) -> String {
    let Some(c) = &input.comparison else {
        return "*The study shares no trunks with a comparison (`train.branches` with \
                `train.compare`).*\n"
            .into();
    };
    let mut out = format!(
        "Every point was also trained as an independent run with the `{}` schedule and the \
         branches' warmup, so that only the schedule's end differs, to test the branched law \
         against it.",
        escape_markdown(&c.schedule)
    );
    if c.missing > 0 {
        out.push_str(&format!(
            " **{} independent run(s) have no finished result yet**: the comparison covers \
             the points that do.",
            c.missing
        ));
    }
    if c.branched_cpu_seconds > 0.0 && c.independent_cpu_seconds > 0.0 {
        out.push_str(&format!(
            " The branched runs cost {} CPU-hours of training, the independent ones {} \
             ({} of it).",
            sig(c.branched_cpu_seconds / 3600.0, 3),
            sig(c.independent_cpu_seconds / 3600.0, 3),
            pct(c.branched_cpu_seconds / c.independent_cpu_seconds)
        ));
    }
    out.push_str("\n\n");
    match c.loss_differences() {
        None => {
            out.push_str("*No point has a finished run both ways yet.*\n");
            return out;
        }
        Some((max, mean)) => out.push_str(&format!(
            "Final validation loss per point: the largest difference is {} (mean {}), {} the \
             {} tolerance.\n\n",
            pct(max),
            pct(mean),
            if max <= LOSS_TOLERANCE {
                "within"
            } else {
                "**beyond**"
            },
            pct(LOSS_TOLERANCE)
        )),
    }
    let rows = c
        .points
        .iter()
        .map(|p| {
            vec![
                format!("`{}`", escape_markdown(&p.name)),
                sig(p.branched, 5),
                sig(p.independent, 5),
                pct(p.rel_difference()),
            ]
        })
        .collect();
    out.push_str(&table(
        &["point", " branched WSD", " independent", " difference"],
        rows,
    ));
    if c.params.is_empty() {
        out.push_str("\n*No law was fitted both ways.*\n");
        return out;
    }
    out.push_str(
        "\nEach law fitted on the branched runs and on the independent ones, with bootstrap \
         intervals; the parameters agree when each value lies inside the other's interval.\n\n",
    );
    let rows = c
        .params
        .iter()
        .map(|p| {
            let verdict = match p.agrees() {
                Some(true) => "yes".to_string(),
                Some(false) => format!("**no**: differs by {}", difference(p)),
                None => format!("no intervals; differs by {}", difference(p)),
            };
            vec![
                escape_markdown(&p.law),
                p.param.clone(),
                format!("{} {}", sig(p.branched, 4), interval(p.branched_ci, 3)),
                format!(
                    "{} {}",
                    sig(p.independent, 4),
                    interval(p.independent_ci, 3)
                ),
                verdict,
            ]
        })
        .collect();
    out.push_str(&table(
        &["law", "parameter", "branched", "independent", "agree"],
        rows,
    ));
    out
}

/// How far the branched value is from the independent one: a percentage, or a factor when
/// they are an order of magnitude apart.
fn difference(p: &ParamPair) -> String {
    let ratio = p.branched / p.independent;
    if !ratio.is_finite() {
        format!("{} against {}", sig(p.branched, 4), sig(p.independent, 4))
    } else if !(0.1..=10.0).contains(&ratio) {
        format!("a factor of {}", sig(ratio, 3))
    } else {
        pct(ratio - 1.0)
    }
}
