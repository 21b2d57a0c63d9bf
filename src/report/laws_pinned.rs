//! The laws section's paragraphs on the Chinchilla law with its floor pinned (`E:`) and on
//! its variable-projection estimate (`estimator: vpnls`).

use super::format::sig;
use crate::fit::pinned::PinnedReport;
use crate::fit::report::{ChinchillaReport, HoldoutReport};
use crate::fit::vpnls::{VpnlsEstimate, VpnlsReport};

fn interval(v: Option<[f64; 2]>) -> String {
    super::format::after(v, 3)
}

/// The pinned law against the free one: parameters, ΔAIC, allocation and hold-out.
pub fn pinned_words(
    c: &ChinchillaReport,
    p: &PinnedReport,
    free_holdout: Option<&HoldoutReport>,
    final_run: bool,
) -> String {
    let l = &p.law;
    let free_aic = c.reduced.iter().find(|r| r.form == "free_e").map(|r| r.aic);
    let mut out = format!(
        "\n**E pinned** at {} ({}), beside the free fit's E = {}{}: A = {}{}, α = {}{}, B = {}{}, \
         β = {}{}",
        sig(l.e, 4),
        if p.source == "entropy" {
            "the data's entropy rate"
        } else {
            "the study's value"
        },
        sig(c.e, 4),
        interval(c.ci.map(|i| i.e)),
        sig(l.a, 4),
        interval(p.ci.map(|i| i.a)),
        sig(l.alpha, 3),
        interval(p.ci.map(|i| i.alpha)),
        sig(l.b, 4),
        interval(p.ci.map(|i| i.b)),
        sig(l.beta, 3),
        interval(p.ci.map(|i| i.beta)),
    );
    if p.ci.is_some() {
        out.push_str(&format!(
            " ({} % intervals, {} resamples)",
            (p.confidence * 100.0).round(),
            p.bootstrap_resamples
        ));
    }
    if let Some(f) = free_aic {
        out.push_str(&format!(
            "; its AIC is {:+.1} against the free-E law's",
            p.aic - f
        ));
    }
    out.push('.');
    if final_run {
        out.push_str(" The final run follows this law.");
    }
    if let Some(a) = p.allocation.first() {
        let ci = |k: usize| interval(a.ci.map(|c| c[k]));
        out.push_str(&format!(
            " For {} FLOPs it puts the optimum at N = {}{} and D = {}{}",
            sig(a.compute, 3),
            sig(a.n_opt, 3),
            ci(0),
            sig(a.d_opt, 3),
            ci(1),
        ));
        out.push_str(&free_allocation(a.compute, c));
        out.push('.');
    }
    if let Some(h) = &p.holdout {
        out.push_str(&format!(
            " Fitted without the {} held-out run(s) ({} {}), it predicts them within {:.2} % at \
             worst ({:.2} % on average)",
            h.points.len(),
            h.kind.replace('_', " "),
            h.k,
            100.0 * h.rel_error_max,
            100.0 * h.rel_error_mean,
        ));
        match free_holdout {
            Some(f) => out.push_str(&format!(
                "; the free-E law, within {:.2} % ({:.2} %).",
                100.0 * f.rel_error_max,
                100.0 * f.rel_error_mean
            )),
            None => out.push('.'),
        }
    }
    out.push('\n');
    out
}

/// The free-E law's optimum for the same budget, in words.
fn free_allocation(compute: f64, c: &ChinchillaReport) -> String {
    let a = crate::fit::chinchilla::allocate(&c.law(), compute);
    format!(
        " (free E: N = {}, D = {})",
        sig(a.n_opt, 3),
        sig(a.d_opt, 3)
    )
}

fn estimate_words(what: &str, e: &VpnlsEstimate) -> String {
    let l = &e.law;
    let [de, _, _, da, db] = e.rel_distance;
    let mut out = format!(
        "{what}: E = {}, A = {}, α = {}, B = {}, β = {} — {:.2} % from the Huber-on-log fit's α, \
         {:.2} % from its β and {:.2} % from its E. On its own objective Σ(L̂ − L)² it reaches {} \
         (the Huber-on-log law: {}); on the Huber-on-log objective it scores {} against that \
         fit's optimum {}.",
        sig(l.e, 4),
        sig(l.a, 4),
        sig(l.alpha, 3),
        sig(l.b, 4),
        sig(l.beta, 3),
        100.0 * da,
        100.0 * db,
        100.0 * de,
        sig(e.sse, 4),
        sig(e.huber_fit_sse, 4),
        sig(e.huber_log_objective, 4),
        sig(e.huber_fit_objective, 4),
    );
    if let Some([c, n, d, ratio]) = e.allocation.first() {
        out.push_str(&format!(
            " For {} FLOPs it puts the optimum at N = {}, D = {} ({:.2}× the Huber-on-log law's N).",
            sig(*c, 3),
            sig(*n, 3),
            sig(*d, 3),
            ratio
        ));
    }
    out
}

/// The variable-projection estimates and how far they lie from the Huber-on-log fits.
pub fn vpnls_words(v: &VpnlsReport) -> String {
    let mut out = format!(
        "\n**Variable projection** (least squares in L: E, A and B solved exactly by \
         non-negative least squares at each pair of exponents, α and β searched; {} profile \
         evaluations). {}",
        v.free.evaluations,
        estimate_words("Free E", &v.free)
    );
    if let Some(p) = &v.pinned {
        out.push(' ');
        out.push_str(&estimate_words("With E pinned", p));
    }
    out.push('\n');
    out
}
