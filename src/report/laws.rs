//! The `laws` table: the Chinchilla law and the reduced forms a grid can support, and the
//! over-training law when the study fits it — every one fitted to the same rows with the same
//! residuals (ln L), so their AICs compare.

use super::Input;
use super::format::sig;
use super::tables::table as markdown_table;

pub fn table(input: &Input) -> String {
    let Some(c) = &input.fits.chinchilla else {
        return "*No law comparison: it needs a chinchilla fit.*\n".into();
    };
    if c.reduced.is_empty() {
        return "*No law comparison in these fits (refit with `scalebook fit`).*\n".into();
    }
    let mut out = String::from(
        "The full law and the reduced forms a grid can support when it cannot place the floor \
         E, fitted to the same runs and compared by AIC (n·ln(SSR/n) + 2k on ln L; lower is \
         better, and a difference under 2 does not separate two laws):\n\n",
    );
    // (form id, words, E, A, α, B, β, k, RMSE, AIC)
    let mut rows: Vec<(String, String, [f64; 5], usize, f64, f64)> = c
        .reduced
        .iter()
        .map(|r| {
            let l = &r.law;
            (
                r.form.clone(),
                crate::fit::diagnose::form_words(&r.form).to_string(),
                [l.e, l.a, l.alpha, l.b, l.beta],
                r.parameters,
                r.rmse_log,
                r.aic,
            )
        })
        .collect();
    if let Some(p) = &c.pinned
        && !c
            .reduced
            .iter()
            .any(|r| r.form == "fixed_e" && r.law == p.law)
    {
        let l = &p.law;
        rows.push((
            "pinned_e".into(),
            format!("E pinned at {} (the study's value)", sig(l.e, 4)),
            [l.e, l.a, l.alpha, l.b, l.beta],
            4,
            p.rmse_log,
            p.aic,
        ));
    }
    if let Some(o) = &input.fits.overtrain {
        let l = &o.chinchilla_form;
        rows.push((
            "overtrain".into(),
            "over-training: one exponent α = β = 2η (Gadre et al. 2024)".into(),
            [l.e, l.a, l.alpha, l.b, l.beta],
            4,
            o.rmse_log,
            o.aic,
        ));
    }
    if let Some(d) = &input.fits.data_constrained {
        let l = &d.law;
        rows.push((
            "data_constrained".into(),
            "data-constrained: effective N′ and D′ (Muennighoff et al. 2023)".into(),
            [l.e, l.a, l.alpha, l.b, l.beta],
            7,
            d.rmse_log,
            d.aic,
        ));
    }
    let best = rows.iter().map(|r| r.5).fold(f64::INFINITY, f64::min);
    let rollout = input.fits.rollout.as_ref();
    let loo = input.fits.leave_one_out.as_ref();
    let errors = |laws: &[crate::fit::rollout::RolloutLaw], id: &str| match laws
        .iter()
        .find(|l| l.form == id)
    {
        Some(l) => format!(
            "{:.2} % / {:.2} %",
            100.0 * l.mean_error,
            100.0 * l.max_error
        ),
        None => "—".into(),
    };
    let cells = rows
        .into_iter()
        .map(|(id, form, [e, a, alpha, b, beta], k, rmse, aic)| {
            let mut row = vec![
                form,
                sig(e, 4),
                sig(a, 4),
                sig(alpha, 3),
                sig(b, 4),
                sig(beta, 3),
                k.to_string(),
                sig(rmse, 3),
                format!("{aic:.1}"),
                format!("{:.1}", aic - best),
            ];
            if let Some(r) = rollout {
                row.push(errors(&r.laws, &id));
            }
            if let Some(l) = loo {
                row.push(errors(&l.laws, &id));
            }
            row
        })
        .collect();
    let mut header = vec![
        "law",
        " E",
        " A",
        " α",
        " B",
        " β",
        " k",
        " RMSE (ln)",
        " AIC",
        " ΔAIC",
    ];
    if rollout.is_some() {
        header.push(" rollout error (mean / worst)");
    }
    if loo.is_some() {
        header.push(" token leave-one-out error (mean / worst)");
    }
    out.push_str(&markdown_table(&header, cells));
    if let Some(r) = rollout {
        out.push_str(&rollout_words(r));
    }
    if let Some(l) = loo {
        out.push_str(&leave_one_out_words(l));
    }
    if let Some(p) = &c.pinned {
        out.push_str(&super::laws_pinned::pinned_words(
            c,
            p,
            input.fits.holdout.as_ref(),
            input.study.final_run.is_some(),
        ));
    }
    if let Some(v) = &c.vpnls {
        out.push_str(&super::laws_pinned::vpnls_words(v));
    }
    if let Some(m) = &input.fits.metric {
        out.push_str(&super::metric::words(m));
    }
    for r in super::accuracy::laws(input) {
        out.push_str(&super::accuracy::words(r));
    }
    if let Some(o) = &input.fits.overtrain {
        out.push_str(&overtrain_words(o));
    }
    if let Some(d) = &input.fits.data_constrained {
        out.push_str(&data_constrained_words(
            d,
            input.study.final_run.as_ref().map(|f| f.budget),
        ));
    }
    out
}

fn data_constrained_words(
    d: &crate::fit::data_constrained_report::DataConstrainedReport,
    final_budget: Option<f64>,
) -> String {
    let iv = |v: Option<[f64; 2]>| super::format::after(v, 3);
    let n = &d.near_optima;
    let mut out = format!(
        "\nThe data-constrained law's repetition constants: R_D\\* = {}{} and R_N\\* = {}{} \
         ({} % intervals). Held fixed anywhere in R_D\\* {}–{} or R_N\\* {}–{} (the other six \
         parameters refitted), the fit stays within 0.1 % of its best objective \
         ({} against the Chinchilla form's {} on the same {} runs, {} of them past one epoch, \
         up to {} epochs).",
        sig(d.law.r_d_star, 3),
        iv(d.ci.map(|c| c.r_d_star)),
        sig(d.law.r_n_star, 3),
        iv(d.ci.map(|c| c.r_n_star)),
        (d.confidence * 100.0).round(),
        sig(n.r_d_star[0], 3),
        sig(n.r_d_star[1], 3),
        sig(n.r_n_star[0], 3),
        sig(n.r_n_star[1], 3),
        sig(d.objective, 5),
        sig(d.chinchilla_objective, 5),
        d.points,
        d.repeated,
        sig(d.max_epochs, 3),
    );
    if let Some(h) = &d.holdout {
        out.push_str(&format!(
            " Fitted without the {} held-out runs ({} {}), it predicts them within {:.2} % on \
             average ({:.2} % at worst); the Chinchilla form fitted to the same runs, within \
             {:.2} % ({:.2} %).",
            h.points.len(),
            h.kind.replace('_', " "),
            h.k,
            100.0 * h.rel_error_mean,
            100.0 * h.rel_error_max,
            100.0 * h.chinchilla_rel_error_mean,
            100.0 * h.chinchilla_rel_error_max,
        ));
    }
    let final_allocation = d
        .allocation
        .iter()
        .find(|a| Some(a.compute) == final_budget);
    if let Some(a) = final_allocation.or(d.allocation.first())
        && let (Some(u), Some(n_opt), Some(epochs)) =
            (a.unique_tokens, a.capped_n_opt, a.capped_epochs)
    {
        out.push_str(&format!(
            " For {} FLOPs with at most {} unique tokens, the law puts the optimum at N = {} \
             trained for {} epochs (fresh data: N = {}, D = {}).",
            sig(a.compute, 3),
            sig(u, 3),
            sig(n_opt, 3),
            sig(epochs, 3),
            sig(a.n_opt, 3),
            sig(a.d_opt, 3),
        ));
    }
    out.push('\n');
    out
}

fn overtrain_words(o: &crate::fit::overtrain_report::OvertrainReport) -> String {
    let iv = |v: Option<[f64; 2]>| super::format::after(v, 3);
    let mut out = format!(
        "\nThe over-training law in its own terms, L(C, M) = E + (a·M^η + b·M^−η)·C^−η with M = \
         D/N: E = {}{}, a = {}{}, b = {}{}, η = {}{} ({} starts, {} at the optimum).",
        sig(o.law.e, 4),
        iv(o.ci.map(|c| c.e)),
        sig(o.law.a, 4),
        iv(o.ci.map(|c| c.a)),
        sig(o.law.b, 4),
        iv(o.ci.map(|c| c.b)),
        sig(o.law.eta, 3),
        iv(o.ci.map(|c| c.eta)),
        o.starts,
        o.starts_at_best
    );
    if let Some(h) = &o.holdout {
        out.push_str(&format!(
            " Fitted without the {} held-out runs ({} {}), it predicts them within {:.3} % at \
             worst ({:.3} % on average).",
            h.points.len(),
            h.kind,
            h.k,
            100.0 * h.rel_error_max,
            100.0 * h.rel_error_mean
        ));
    }
    if let Some(v) = &o.vpnls {
        out.push_str(&format!(
            " By least squares in L (variable projection, `estimator: vpnls`, the paper's own \
             objective): E = {}, a = {}, b = {}, η = {}, Σ(L̂ − L)² = {} (the Huber-on-log \
             fit's: {}).",
            sig(v.law.e, 4),
            sig(v.law.a, 4),
            sig(v.law.b, 4),
            sig(v.law.eta, 3),
            sig(v.sse, 4),
            sig(v.huber_fit_sse, 4)
        ));
        if let Some(h) = &v.holdout {
            out.push_str(&format!(
                " Fitted so without the held-out runs, it predicts them within {:.3} % at worst \
                 ({:.3} % on average).",
                100.0 * h.rel_error_max,
                100.0 * h.rel_error_mean
            ));
        }
    }
    out.push('\n');
    out
}

fn rollout_words(r: &crate::fit::rollout::RolloutReport) -> String {
    let folds: Vec<String> = r
        .folds
        .iter()
        .map(|f| format!("{} sizes → the next ({} runs)", f.fitted_sizes, f.runs))
        .collect();
    format!(
        "\n**Rollout audit**: every law refitted on the smallest sizes and asked for the next \
         one, fold by fold ({}); the column gives each law's largest relative error on the \
         predicted size, averaged over the folds and at its worst. Ranked by it: {}.\n",
        folds.join("; "),
        ranked(r.laws.iter().map(|l| l.form.as_str()))
    )
}

fn leave_one_out_words(r: &crate::fit::rollout::LeaveOneOutReport) -> String {
    let folds: Vec<String> = r
        .folds
        .iter()
        .map(|f| format!("D = {} ({} runs)", sig(f.tokens, 3), f.runs))
        .collect();
    format!(
        "\n**Leave one token count out**: every law refitted without each token count in turn \
         (from the other {}) and asked for its runs ({}); the column gives each law's largest \
         relative error on the left-out runs, averaged over the folds and at its worst — the \
         first and last folds extrapolate in D, the others interpolate. Ranked by it: {}.\n",
        r.folds.first().map_or(0, |f| f.fitted_token_counts),
        folds.join("; "),
        ranked(r.laws.iter().map(|l| l.form.as_str()))
    )
}

/// Laws in the order an audit ranked them, in words: "E fitted < E = 0 < …".
fn ranked<'a>(forms: impl Iterator<Item = &'a str>) -> String {
    forms
        .map(crate::fit::diagnose::form_words)
        .collect::<Vec<_>>()
        .join(" < ")
}
