//! Planned runs the fits never saw because the store has no usable record of them —
//! missing, or corrupt — named, with what the law lost by their absence: the sizes and token
//! counts no fitted run has any more, and how far the fitted range shrank.

use super::{Evidence, LeftOut, Warning, distinct};

/// `runs_missing` and `runs_corrupt`, in that order, when there are such runs.
pub(super) fn warnings(ev: &Evidence) -> Vec<Warning> {
    let mut out = Vec::new();
    for (status, code) in [("missing", "runs_missing"), ("corrupt", "runs_corrupt")] {
        let runs: Vec<&LeftOut> = ev.left_out.iter().filter(|r| r.status == status).collect();
        if runs.is_empty() {
            continue;
        }
        let names: Vec<String> = runs
            .iter()
            .map(|r| match status {
                "corrupt" => format!("{} ({})", r.name, r.reason),
                _ => r.name.clone(),
            })
            .collect();
        let one = runs.len() == 1;
        let (what, suggestion) = match status {
            "missing" => (
                if one {
                    "is not in the store"
                } else {
                    "are not in the store"
                },
                "run `scalebook run` to train them (a published store: restore them from \
                 version control), then report again",
            ),
            _ => (
                if one {
                    "has a record that does not read back"
                } else {
                    "have records that do not read back"
                },
                "restore the records from version control, or delete their folders and run \
                 `scalebook run` to train them again",
            ),
        };
        let mut planned: Vec<(f64, f64)> = ev.points.iter().map(|p| (p.n, p.d)).collect();
        planned.extend(runs.iter().map(|r| (r.n, r.d)));
        out.push(
            Warning::new(
                code,
                "runs",
                format!(
                    "{} planned run{} {what}, so the law was fitted without {}: {}. {}",
                    runs.len(),
                    if one { "" } else { "s" },
                    if one { "it" } else { "them" },
                    names.join("; "),
                    lost(ev, &runs)
                ),
                suggestion,
            )
            .with("count", runs.len() as f64)
            .with("fitted", ev.points.len() as f64)
            .with(
                "sizes_fitted",
                distinct(ev.points.iter().map(|p| p.n)) as f64,
            )
            .with(
                "sizes_planned",
                distinct(planned.iter().map(|p| p.0)) as f64,
            ),
        );
    }
    out
}

/// What the fits lost: sizes and token counts no fitted run has, and the fitted range's
/// ends against the plan's.
fn lost(ev: &Evidence, runs: &[&LeftOut]) -> String {
    let fitted_n: Vec<f64> = ev.points.iter().map(|p| p.n).collect();
    let fitted_d: Vec<f64> = ev.points.iter().map(|p| p.d).collect();
    let gone = |values: Vec<f64>, fitted: &[f64]| -> Vec<f64> {
        let mut v: Vec<f64> = values
            .into_iter()
            .filter(|x| !fitted.iter().any(|f| (f - x).abs() <= 1e-9 * x.abs()))
            .collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let sizes = gone(runs.iter().map(|r| r.n).collect(), &fitted_n);
    let tokens = gone(runs.iter().map(|r| r.d).collect(), &fitted_d);
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.3e}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut said = Vec::new();
    if !sizes.is_empty() {
        said.push(format!("no fitted run has N = {} any more", list(&sizes)));
    }
    if !tokens.is_empty() {
        said.push(format!("no fitted run has D = {} any more", list(&tokens)));
    }
    let max = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
    let (n_fit, d_fit) = (max(&fitted_n), max(&fitted_d));
    let n_plan = max(&runs.iter().map(|r| r.n).collect::<Vec<_>>()).max(n_fit);
    let d_plan = max(&runs.iter().map(|r| r.d).collect::<Vec<_>>()).max(d_fit);
    if fitted_n.is_empty() {
        said.push("no run is left to fit".into());
    } else {
        if n_plan > n_fit {
            said.push(format!(
                "the largest fitted size is N = {n_fit:.3e} of the planned {n_plan:.3e}, so the \
                 law extrapolates further"
            ));
        }
        if d_plan > d_fit {
            said.push(format!(
                "the largest fitted token count is D = {d_fit:.3e} of the planned {d_plan:.3e}"
            ));
        }
    }
    if said.is_empty() {
        "Every size and token count still has fitted runs, but the fits rest on fewer points \
         than planned."
            .into()
    } else {
        let mut text = said.join("; ");
        text[..1].make_ascii_uppercase();
        text + "."
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::chinchilla::Point;
    use crate::fit::diagnose::diagnose;
    use crate::fit::suite::FitReport;

    fn point(n: f64, d: f64) -> Point {
        Point { n, d, loss: 3.0 }
    }

    #[test]
    fn a_missing_largest_size_is_named_with_what_the_law_lost() {
        let points = [point(1e5, 1e6), point(1e5, 2e6), point(4e5, 1e6)];
        let left = [
            LeftOut {
                name: "l4-d128-t2e6".into(),
                status: "missing".into(),
                n: 1.6e6,
                d: 2e6,
                ..LeftOut::default()
            },
            LeftOut {
                name: "l2-d64-t2e6".into(),
                status: "corrupt".into(),
                reason: "result.json is not a run record".into(),
                n: 4e5,
                d: 2e6,
            },
        ];
        let w = diagnose(
            &FitReport::default(),
            &Evidence {
                points: &points,
                left_out: &left,
                ..Evidence::default()
            },
        );
        let codes: Vec<&str> = w.iter().map(|w| w.code.as_str()).collect();
        assert_eq!(codes, ["runs_missing", "runs_corrupt"]);
        let m = &w[0].message;
        assert!(m.contains("1 planned run is not in the store"), "{m}");
        assert!(m.contains("l4-d128-t2e6"), "{m}");
        assert!(m.contains("No fitted run has N = 1.600e6 any more"), "{m}");
        assert!(
            m.contains("largest fitted size is N = 4.000e5 of the planned 1.600e6"),
            "{m}"
        );
        let c = &w[1].message;
        assert!(
            c.contains("l2-d64-t2e6 (result.json is not a run record)"),
            "{c}"
        );
        assert!(c.contains("fewer points than planned"), "{c}");
        assert_eq!(w[0].values["count"], 1.0);
    }
}
