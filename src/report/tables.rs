//! The report's tables as GitHub-flavoured Markdown, one function per table id
//! (`TABLE_IDS`). Cell text from the data is escaped; numbers use [`super::format`].

use super::Input;
use super::format::{human, interval, mib, pct, sci, seconds, sig};
use super::template::{CheckResult, escape_markdown};

pub(super) fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out.push_str(&format!(
        "|{}\n",
        header
            .iter()
            .map(|h| if h.starts_with(' ') {
                " ---: |"
            } else {
                " --- |"
            })
            .collect::<String>()
    ));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

pub(super) fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "—".into())
}

pub fn runs(input: &Input) -> String {
    if input.runs.is_empty() {
        return "*No runs are recorded yet.*\n".into();
    }
    // A learning-rate sweep adds the lr and says which run of each point the fits use.
    let swept = input.fits.hyper.is_some();
    let rows = input
        .runs
        .iter()
        .map(|r| {
            let mut status = match &r.reason {
                Some(why) if r.status != "ok" => {
                    format!("{}: {}", r.status, escape_markdown(why))
                }
                _ => format!("{}{}", r.status, spike_note(r)),
            };
            if swept && r.status == "ok" {
                status.push_str(if r.selected {
                    ", best lr"
                } else {
                    ", not fitted"
                });
            }
            let mut row = vec![
                format!("`{}`", escape_markdown(&r.name)),
                escape_markdown(&r.size),
                format!("{}/{}/{}", r.layers, r.d_model, r.heads),
                human(r.params_total as f64),
                human(r.tokens as f64),
            ];
            if swept {
                row.push(format!("{:e}", r.lr));
            }
            row.extend([
                sci(r.flops),
                opt(r.loss, |l| sig(l, 5)),
                status,
                if r.wall_seconds > 0.0 {
                    seconds(r.wall_seconds)
                } else {
                    "—".into()
                },
                if r.tokens_per_second > 0.0 {
                    format!("{:.0}", r.tokens_per_second)
                } else {
                    "—".into()
                },
                opt(r.peak_rss_bytes.map(|b| b as f64), mib),
            ]);
            row
        })
        .collect();
    let mut header = vec!["run", "size", "L/d/h", " N (total)", " D"];
    if swept {
        header.push(" lr");
    }
    header.extend([
        " C (FLOPs)",
        " loss",
        "status",
        " wall",
        " tok/s",
        " peak RSS",
    ]);
    let mut out = table(&header, rows);
    // Branches of a shared trunk: their own time covers only part of their steps.
    if input
        .runs
        .iter()
        .any(|r| r.independent_wall_seconds > r.wall_seconds * 1.0001)
    {
        out.push_str(
            "\n*Branches of a shared trunk (`train.branches`): a run's wall time and tokens \
             per second are for the steps it trained itself — its decay, and the trunk's steps \
             since the snapshot it continued from (all of them for the run that trained the \
             trunk). The cost chart and cost law use each run's time trained on its own: its \
             wall time × tokens ÷ tokens it trained.*\n",
        );
    }
    out
}

/// " (2 spikes, largest ×1.8 at step 121)" for a run that recovered from loss spikes.
fn spike_note(r: &super::context::RunRow) -> String {
    match (r.spikes, r.largest_spike_step, r.largest_spike_ratio) {
        (Some(n), Some(step), Some(ratio)) if n > 0 => format!(
            " ({n} spike{}, largest ×{ratio:.2} at step {step})",
            if n == 1 { "" } else { "s" }
        ),
        _ => String::new(),
    }
}

pub fn fits(input: &Input) -> String {
    let f = &input.fits;
    let mut out = String::new();
    if let Some(c) = &f.chinchilla {
        out.push_str(&format!(
            "**Approach 3** (Hoffmann et al. 2022; Besiroglu et al. 2024): L(N, D) = E + A/N^α + B/D^β, \
             Huber δ = {} on ln L, {} starts ({} reached the best objective), {} runs, N = {} parameters.\n\n",
            c.delta,
            c.starts,
            c.starts_at_best,
            c.points,
            match c.params {
                crate::study::ParamsConvention::Total => "total",
                crate::study::ParamsConvention::NonEmbedding => "non-embedding",
            }
        ));
        let conf = format!(" {:.0} % interval", c.confidence * 100.0);
        let ci = c.ci.as_ref();
        // A degenerate interval is not shown as if it measured anything.
        let iv = |name: &str, v: Option<[f64; 2]>| {
            if c.degenerate.iter().any(|d| d == name) {
                "— (degenerate: the resamples did not move it)".to_string()
            } else {
                interval(v, 4)
            }
        };
        let rows = vec![
            vec!["E".into(), sig(c.e, 5), iv("E", ci.map(|i| i.e))],
            vec!["A".into(), sig(c.a, 5), iv("A", ci.map(|i| i.a))],
            vec!["B".into(), sig(c.b, 5), iv("B", ci.map(|i| i.b))],
            vec![
                "α".into(),
                sig(c.alpha, 5),
                iv("alpha", ci.map(|i| i.alpha)),
            ],
            vec!["β".into(), sig(c.beta, 5), iv("beta", ci.map(|i| i.beta))],
        ];
        out.push_str(&table(&["parameter", " estimate", &conf], rows));
        out.push_str(&format!(
            "\nObjective {:.8e}, gradient norm {:.1e}, {} bootstrap resamples.\n",
            c.objective, c.grad_norm, c.bootstrap_resamples
        ));
        if let Some(h) = input.data.entropy {
            out.push_str(&format!(
                "\nThe data's true entropy rate is {} ± {} nats/token: the fitted E should sit at or above it.\n",
                sig(h, 5),
                sig(input.data.entropy_stderr.unwrap_or(f64::NAN), 2)
            ));
        }
    }
    if !f.power.is_empty() {
        out.push_str("\n**Single-variable laws** (compared by AIC and hold-out error):\n\n");
        let rows = f
            .power
            .iter()
            .map(|p| {
                // The log form a − b·ln x has no exponent.
                let log = p.fit.form == crate::fit::power::Form::Log;
                vec![
                    format!("{:?}", p.x).to_lowercase(),
                    format!("{:?}", p.fit.form).to_lowercase(),
                    sig(p.fit.e, 5),
                    sig(p.fit.a, 5),
                    if log {
                        "—".into()
                    } else {
                        sig(p.fit.alpha, 4)
                    },
                    if log {
                        "—".into()
                    } else {
                        interval(p.ci.as_ref().map(|c| c.alpha), 3)
                    },
                    sig(p.fit.rmse_log, 3),
                    sig(p.fit.r2_log, 4),
                    format!("{:.1}", p.fit.aic),
                    opt(p.holdout_rel_error, pct),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "x",
                "form",
                " E / a",
                " A / b",
                " α",
                " α interval",
                " RMSE (ln)",
                " R² (ln)",
                " AIC",
                " hold-out error",
            ],
            rows,
        ));
    }
    if let Some(iso) = &f.isoflop {
        out.push_str(&format!(
            "\n**Approach 2** (IsoFLOP): N_opt ∝ C^{:.4}{}, D_opt ∝ C^{:.4}{} over {} budgets.\n\n",
            iso.a,
            iso.ci
                .as_ref()
                .map(|c| format!(" {}", interval(Some(c.a), 3)))
                .unwrap_or_default(),
            iso.b,
            iso.ci
                .as_ref()
                .map(|c| format!(" {}", interval(Some(c.b), 3)))
                .unwrap_or_default(),
            iso.budgets.len()
        ));
        let rows = iso
            .budgets
            .iter()
            .map(|b| {
                vec![
                    sci(b.budget),
                    human(b.n_opt),
                    human(b.d_opt),
                    sig(b.loss_opt, 5),
                    b.sizes.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(&[" C", " N_opt", " D_opt", " loss", " sizes"], rows));
    }
    if let Some(fr) = &f.frontier {
        out.push_str(&format!(
            "\n**Approach 1** (frontier): N ∝ C^{:.4}, D ∝ C^{:.4} over {} compute buckets.\n",
            fr.a,
            fr.b,
            fr.points.len()
        ));
    }
    if let Some(cost) = &f.cost {
        if let Some(w) = &cost.wall_seconds {
            // T: the threads a run trained with, when the runs differ in it.
            let threads = if w.r == 0.0 {
                format!(", at {} thread(s) per run", w.threads)
            } else {
                format!(" · T^{:.3}, T threads per run", w.r)
            };
            out.push_str(&format!(
                "\n**Cost law**: wall seconds ≈ e^{:.3} · N^{:.3} · D^{:.3}{threads} (RMSE of ln {:.3}, {} runs).\n",
                w.c, w.p, w.q, w.rmse_log, w.points
            ));
        }
        if let Some(m) = &cost.peak_rss_bytes {
            out.push_str(&format!(
                "\n**Memory law**: peak RSS bytes ≈ e^{:.3} · N^{:.3} · D^{:.3} (RMSE of ln {:.3}).\n",
                m.c, m.p, m.q, m.rmse_log
            ));
        }
    }
    if out.is_empty() {
        out.push_str("*No law could be fitted; see the warnings.*\n");
    }
    out
}

pub fn allocation(input: &Input) -> String {
    let f = &input.fits;
    if f.allocation.is_empty() {
        return "*No allocation: it needs a chinchilla fit.*\n".into();
    }
    let mut out = String::from(
        "Compute-optimal split of each budget under the fitted law (Hoffmann et al. 2022, eq. 4: \
         N_opt = G·(C/6)^a, D_opt = G⁻¹·(C/6)^b, C ≈ 6ND):\n\n",
    );
    let rows = f
        .allocation
        .iter()
        .map(|a| {
            let ci = |i: usize| a.ci.map(|c| c[i]);
            vec![
                sci(a.compute),
                format!("{} {}", human(a.n_opt), interval_human(ci(0))),
                format!("{} {}", human(a.d_opt), interval_human(ci(1))),
                format!("{} {}", sig(a.tokens_per_param, 3), interval(ci(2), 3)),
                format!("{} {}", sig(a.loss, 4), interval(ci(3), 4)),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            " C (FLOPs)",
            " N_opt",
            " D_opt",
            " tokens/param",
            " predicted loss",
        ],
        rows,
    ));
    for c in &f.constrained {
        out.push_str(&format!(
            "\nUnder a {} budget of {}{}: N = {}, D = {}, predicted loss {}.\n",
            c.budget_kind.replace('_', " "),
            sig(c.budget, 3),
            c.max_params
                .map(|m| format!(" with N ≤ {}", human(m)))
                .unwrap_or_default(),
            human(c.optimum.n),
            human(c.optimum.d),
            sig(c.optimum.loss, 4)
        ));
    }
    out
}

pub(super) fn interval_human(ci: Option<[f64; 2]>) -> String {
    ci.map(|[lo, hi]| format!("[{}, {}]", human(lo), human(hi)))
        .unwrap_or_default()
}

pub fn holdout(input: &Input) -> String {
    let Some(h) = &input.fits.holdout else {
        return "*No hold-out check: add `holdout: {largest: 1}` to the study.*\n".into();
    };
    let mut out = format!(
        "Fitted on {} runs without the {} {} held out, then asked to predict them:\n\n",
        h.fitted_points,
        h.k,
        if h.kind == "largest" {
            "largest model size(s)"
        } else {
            "largest budget(s)"
        }
    );
    let rows = h
        .points
        .iter()
        .map(|p| {
            vec![
                format!("`{}`", escape_markdown(&p.name)),
                human(p.n),
                human(p.d),
                sig(p.measured, 5),
                sig(p.predicted, 5),
                interval(p.predicted_ci, 4),
                pct(p.rel_error),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "run",
            " N",
            " D",
            " measured",
            " predicted",
            " interval for one run",
            " error",
        ],
        rows,
    ));
    out.push_str(&format!(
        "\nLargest relative error {}, mean {}.\n",
        pct(h.rel_error_max),
        pct(h.rel_error_mean)
    ));
    out
}

pub fn warnings(input: &Input) -> String {
    if input.fits.warnings.is_empty() {
        return "*No warnings.*\n".into();
    }
    input
        .fits
        .warnings
        .iter()
        .map(|w| {
            format!(
                "- **`{}`** ({}): {}. *What to do:* {}.\n",
                w.code,
                escape_markdown(&w.subject),
                escape_markdown(w.message.trim_end_matches('.')),
                escape_markdown(w.suggestion.trim_end_matches('.'))
            )
        })
        .collect()
}

/// "Which law the data support": the free-E law beside the reduced forms, by AIC.
pub fn checks(results: &[CheckResult]) -> String {
    if results.is_empty() {
        return "*The study has no `checks:`.*\n".into();
    }
    let rows = results
        .iter()
        .map(|c| {
            vec![
                format!("`{}`", c.expression.replace('`', "'").replace('|', "\\|")),
                if c.passed { "✅ pass" } else { "❌ fail" }.to_string(),
                escape_markdown(&c.detail),
            ]
        })
        .collect();
    table(&["check", "result", "detail"], rows)
}

/// Markdown for a table id.
pub fn render(id: &str, input: &Input, checks_done: &[CheckResult]) -> String {
    match id {
        "runs" => runs(input),
        "fits" => fits(input),
        "allocation" => allocation(input),
        "holdout" => holdout(input),
        "final" => super::final_table::final_run(input),
        "warnings" => warnings(input),
        "laws" => super::laws::table(input),
        "learning_rate" => super::sweep::table(input),
        "lr_transfer" => super::sweep::transfer_table(input),
        "batch_size" => super::batch::table(input),
        "checks" => checks(checks_done),
        "branches" => super::comparison::table_md(input),
        "curve" => super::curves::table_md(input),
        "decisions" => super::decisions::table_md(input),
        other => format!("*Unknown table `{}`.*\n", escape_markdown(other)),
    }
}
