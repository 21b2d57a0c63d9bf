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
    // (form, E, A, α, B, β, k, RMSE, AIC)
    let mut rows: Vec<(String, [f64; 5], usize, f64, f64)> = c
        .reduced
        .iter()
        .map(|r| {
            let l = &r.law;
            (
                crate::fit::diagnose::form_words(&r.form).to_string(),
                [l.e, l.a, l.alpha, l.b, l.beta],
                r.parameters,
                r.rmse_log,
                r.aic,
            )
        })
        .collect();
    if let Some(o) = &input.fits.overtrain {
        let l = &o.chinchilla_form;
        rows.push((
            "over-training: one exponent α = β = 2η (Gadre et al. 2024)".into(),
            [l.e, l.a, l.alpha, l.b, l.beta],
            4,
            o.rmse_log,
            o.aic,
        ));
    }
    let best = rows.iter().map(|r| r.4).fold(f64::INFINITY, f64::min);
    let cells = rows
        .into_iter()
        .map(|(form, [e, a, alpha, b, beta], k, rmse, aic)| {
            vec![
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
            ]
        })
        .collect();
    out.push_str(&markdown_table(
        &[
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
        ],
        cells,
    ));
    if let Some(o) = &input.fits.overtrain {
        out.push_str(&overtrain_words(o));
    }
    out
}

fn overtrain_words(o: &crate::fit::overtrain_report::OvertrainReport) -> String {
    let iv = |v: Option<[f64; 2]>| {
        v.map_or(String::new(), |[lo, hi]| {
            format!(" [{}, {}]", sig(lo, 3), sig(hi, 3))
        })
    };
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
    out.push('\n');
    out
}
