//! The cost laws in `fits.json` — wall time and peak memory against N and D — and the
//! optima they constrain for `fit --wall-budget` and `--max-params`.

use super::constrained::{for_flops, for_wall_time};
use super::cost;
use super::diagnose::Warning;
use super::suite::{ConstrainedReport, CostReport, FitReport, Request, Row};

/// Wall time and memory against N and D.
pub(super) fn fit_cost(rows: &[Row], warnings: &mut Vec<Warning>) -> CostReport {
    let with = |f: &dyn Fn(&Row) -> Option<f64>| {
        let picked: Vec<(&Row, f64)> = rows.iter().filter_map(|r| f(r).map(|v| (r, v))).collect();
        let n: Vec<f64> = picked.iter().map(|(r, _)| r.params_total).collect();
        let d: Vec<f64> = picked.iter().map(|(r, _)| r.tokens).collect();
        let t: Vec<f64> = picked
            .iter()
            .map(|(r, _)| r.threads.unwrap_or(1.0))
            .collect();
        let y: Vec<f64> = picked.iter().map(|(_, v)| *v).collect();
        cost::fit(&n, &d, &t, &y)
    };
    let wall = with(&|r| r.wall_seconds);
    let rss = with(&|r| r.peak_rss_bytes);
    if wall.is_none() {
        warnings.push(Warning::problem(
            "cost: wall time cannot be fitted (N and D must both vary)",
        ));
    }
    CostReport {
        wall_seconds: wall,
        peak_rss_bytes: rss,
    }
}

/// Optima under the requested wall-clock budget and parameter cap.
pub(super) fn constrain(report: &mut FitReport, request: &Request) {
    let Some(c) = &report.chinchilla else {
        if request.wall_budget.is_some() || request.max_params.is_some() {
            report.warnings.push(Warning::problem(
                "constrained optimum: needs a chinchilla fit",
            ));
        }
        return;
    };
    let law = c.law();
    if let Some(cap) = request.max_params {
        for &budget in &request.budgets {
            report.constrained.push(ConstrainedReport {
                budget_kind: "flops".into(),
                budget,
                max_params: Some(cap),
                optimum: for_flops(&law, budget, Some(cap)),
            });
        }
    }
    if let Some(seconds) = request.wall_budget {
        let wall = report.cost.as_ref().and_then(|c| c.wall_seconds);
        match wall.and_then(|w| for_wall_time(&law, &w, seconds, request.max_params)) {
            Some(optimum) => report.constrained.push(ConstrainedReport {
                budget_kind: "wall_seconds".into(),
                budget: seconds,
                max_params: request.max_params,
                optimum,
            }),
            None => report.warnings.push(Warning::problem(format!(
                "constrained optimum for {seconds} s: needs a `cost` fit whose time grows with D \
                 (add `- {{ law: cost }}` to fits), and a budget that buys at least one token"
            ))),
        }
    }
}
