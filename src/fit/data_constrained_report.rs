//! `law: data_constrained` in `fits.json`: the fitted law with its bootstrap intervals and
//! the spread of its near optima (R_D* and R_N* are weakly identified), its AIC beside the
//! Chinchilla form's on the same rows, its own hold-out check (the study's `holdout:` split),
//! and the allocation it implies with and without a cap on unique tokens.

use serde::{Deserialize, Serialize};

use super::approach3::{holdout_points, split};
use super::data_constrained::{self, DataConstrainedLaw, NearOptima, RepeatPoint};
use super::diagnose::Warning;
use super::options::{Holdout, ParamsConvention};
use super::suite::{FitReport, HoldoutPoint, Request, Row};

/// The options of `law: data_constrained`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataConstrainedOptions {
    pub resamples: u64,
    pub confidence: f64,
    pub delta: f64,
    pub params: ParamsConvention,
}

/// Percentile intervals of the law's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DataConstrainedCi {
    #[serde(rename = "E")]
    pub e: [f64; 2],
    #[serde(rename = "A")]
    pub a: [f64; 2],
    #[serde(rename = "B")]
    pub b: [f64; 2],
    pub alpha: [f64; 2],
    pub beta: [f64; 2],
    #[serde(rename = "R_D_star")]
    pub r_d_star: [f64; 2],
    #[serde(rename = "R_N_star")]
    pub r_n_star: [f64; 2],
}

/// The law and the Chinchilla form fitted without the held-out runs, and how each predicts
/// them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataConstrainedHoldout {
    /// `largest`, `budgets` or `epochs_above`, and k.
    pub kind: String,
    pub k: u64,
    pub fitted_points: usize,
    pub law: DataConstrainedLaw,
    pub points: Vec<HoldoutPoint>,
    pub rel_error_max: f64,
    pub rel_error_mean: f64,
    /// The Chinchilla form (D as trained) on the same split.
    pub chinchilla_rel_error_max: f64,
    pub chinchilla_rel_error_mean: f64,
}

/// The optimum for one budget (C = 6ND) under the law, with fresh data and within the
/// largest unique-token pool of the runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DataConstrainedAllocation {
    pub compute: f64,
    pub n_opt: f64,
    pub d_opt: f64,
    pub loss: f64,
    /// The unique tokens the capped optimum may draw from (`None`: no run records them).
    pub unique_tokens: Option<f64>,
    pub capped_n_opt: Option<f64>,
    pub capped_d_opt: Option<f64>,
    pub capped_loss: Option<f64>,
    /// Epochs of the capped optimum (D / U_D).
    pub capped_epochs: Option<f64>,
}

/// `fits.data_constrained`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataConstrainedReport {
    #[serde(flatten)]
    pub law: DataConstrainedLaw,
    pub params: ParamsConvention,
    pub delta: f64,
    /// Σ Huber_δ of the log residuals at the optimum, and the Chinchilla form's on the same
    /// runs (D as trained).
    pub objective: f64,
    pub chinchilla_objective: f64,
    pub starts: usize,
    /// The starts that end within 0.1 % of the best objective, and their R_D*, R_N* span.
    pub near_optima: NearOptima,
    pub points: usize,
    /// Runs that repeat their data (D > U_D), and the most epochs any run trains.
    pub repeated: usize,
    pub max_epochs: f64,
    /// Root mean squared log residual and AIC (n·ln(SSR/n) + 2·7), comparable with the
    /// Chinchilla forms' (`fits.chinchilla.reduced`): same rows, same residuals.
    pub rmse_log: f64,
    pub aic: f64,
    pub confidence: f64,
    pub bootstrap_resamples: u64,
    pub ci: Option<DataConstrainedCi>,
    pub holdout: Option<DataConstrainedHoldout>,
    pub allocation: Vec<DataConstrainedAllocation>,
}

fn repeat_points(rows: &[&Row], params: ParamsConvention) -> Vec<RepeatPoint> {
    rows.iter()
        .map(|r| RepeatPoint {
            n: r.n(params),
            d: r.tokens,
            unique: r.unique_tokens,
            loss: r.loss,
        })
        .collect()
}

/// Runs past this many epochs of their unique tokens are named: Muennighoff et al. find up
/// to ~4 epochs almost as good as fresh data, and fewer worth much past ~16.
pub const EPOCHS_NAMED: f64 = 4.0;

/// When any run repeats its data: `data_repeated` naming the runs past [`EPOCHS_NAMED`]
/// epochs, and the data-constrained law fitted beside the plain one (when `fits:` does not
/// ask for it already, with its defaults and the Chinchilla fit's parameter convention).
pub(super) fn repeated_data(all: &[&Row], request: &Request, report: &mut FitReport) {
    let epochs = |r: &Row| r.unique_tokens.map(|u| r.tokens / u);
    let repeated = all
        .iter()
        .filter(|r| epochs(r).is_some_and(|e| e > 1.0))
        .count();
    if repeated == 0 {
        return;
    }
    let past: Vec<String> = all
        .iter()
        .filter_map(|r| {
            let e = epochs(r)?;
            (e > EPOCHS_NAMED).then(|| format!("{} ({e:.1} epochs)", r.name))
        })
        .collect();
    let max = all.iter().filter_map(|r| epochs(r)).fold(0.0, f64::max);
    let mut message = format!(
        "{repeated} of {} run(s) train on more tokens than their unique pool holds (up to \
         {max:.1} epochs), so their D overstates the data they saw",
        all.len()
    );
    if !past.is_empty() {
        message.push_str(&format!(
            "; past {EPOCHS_NAMED} epochs, where repeated tokens lose most of their worth: {}",
            past.join(", ")
        ));
    }
    report.warnings.push(
        Warning::new(
            "data_repeated",
            "runs",
            message,
            "read the data-constrained law beside the plain one (it counts repeated tokens at \
             their worth); a larger corpus keeps D honest",
        )
        .with("runs", repeated as f64)
        .with("past_4_epochs", past.len() as f64)
        .with("max_epochs", max),
    );
    let asked = request
        .fits
        .iter()
        .any(|f| matches!(f, super::options::LawRequest::DataConstrained { .. }));
    if !asked {
        let params = request
            .fits
            .iter()
            .find_map(|f| match f {
                super::options::LawRequest::Chinchilla { params, .. } => Some(*params),
                _ => None,
            })
            .unwrap_or(ParamsConvention::Total);
        fit_data_constrained(
            all,
            request,
            report,
            DataConstrainedOptions {
                resamples: 200,
                confidence: 0.95,
                delta: 1e-3,
                params,
            },
        );
    }
}

/// Fit `law: data_constrained` to `all` into `report.data_constrained`; a problem is a
/// warning.
pub(super) fn fit_data_constrained(
    all: &[&Row],
    request: &Request,
    report: &mut FitReport,
    options: DataConstrainedOptions,
) {
    let pts = repeat_points(all, options.params);
    if !data_constrained::repeats(&pts) {
        report.warnings.push(Warning::problem(
            "data_constrained: no run repeats its data (none trains on more tokens than its \
             unique pool holds), so the law has nothing to tell from the Chinchilla form",
        ));
        return;
    }
    let Some(fitted) = data_constrained::fit(&pts, options.delta) else {
        report.warnings.push(Warning::problem(format!(
            "data_constrained: the law could not be fitted to {} run(s) (it needs 8 or more \
             with positive N, D, unique tokens and loss)",
            pts.len()
        )));
        return;
    };
    let law = fitted.law;
    let n = pts.len() as f64;
    let ssr: f64 = pts
        .iter()
        .map(|p| (law.loss(p.n, p.d, p.unique).ln() - p.loss.ln()).powi(2))
        .sum();
    let ci = (options.resamples > 0)
        .then(|| {
            data_constrained::intervals(
                &pts,
                options.delta,
                &fitted,
                options.resamples as usize,
                options.confidence,
                request.seed,
            )
        })
        .flatten()
        .map(|v| DataConstrainedCi {
            e: v[0],
            a: v[1],
            b: v[2],
            alpha: v[3],
            beta: v[4],
            r_d_star: v[5],
            r_n_star: v[6],
        });
    let pool = pts
        .iter()
        .filter_map(|p| p.unique)
        .fold(None, |m: Option<f64>, u| Some(m.map_or(u, |m| m.max(u))));
    let allocation = request
        .budgets
        .iter()
        .map(|&c| {
            let cap = match request.final_unique_tokens {
                Some(u) if request.final_budget == Some(c) => Some(u),
                _ => pool,
            };
            allocation(&law, c, cap)
        })
        .collect();
    let holdout = request
        .holdout
        .and_then(|h| holdout(all, h, &options, &mut report.warnings));
    if let Some(w) = identification(&fitted.near, ci.as_ref()) {
        report.warnings.push(w);
    }
    let epochs: Vec<f64> = pts
        .iter()
        .filter_map(|p| p.unique.map(|u| p.d / u))
        .collect();
    report.data_constrained = Some(DataConstrainedReport {
        law,
        params: options.params,
        delta: options.delta,
        objective: fitted.objective,
        chinchilla_objective: fitted.chinchilla_objective,
        starts: fitted.starts,
        near_optima: fitted.near,
        points: pts.len(),
        repeated: epochs.iter().filter(|e| **e > 1.0).count(),
        max_epochs: epochs.iter().copied().fold(0.0, f64::max),
        rmse_log: (ssr / n).sqrt(),
        aic: n * (ssr.max(1e-300) / n).ln() + 2.0 * 7.0,
        confidence: options.confidence,
        bootstrap_resamples: options.resamples,
        ci,
        holdout,
        allocation,
    });
}

/// A profile span wider than this ratio, or a bootstrap interval wider than
/// [`WEAK_INTERVAL`], marks R_D* or R_N* as weakly identified.
pub const WEAK_SPAN: f64 = 2.0;
pub const WEAK_INTERVAL: f64 = 10.0;

/// `repetition_weakly_identified` when the runs do not pin R_D* or R_N* down.
fn identification(near: &NearOptima, ci: Option<&DataConstrainedCi>) -> Option<Warning> {
    let ratio = |v: [f64; 2]| v[1] / v[0];
    let weak = |span: [f64; 2], iv: Option<[f64; 2]>| {
        ratio(span) > WEAK_SPAN
            || iv.is_some_and(|iv| ratio(iv).is_nan() || ratio(iv) > WEAK_INTERVAL)
    };
    let d = weak(near.r_d_star, ci.map(|c| c.r_d_star));
    let n = weak(near.r_n_star, ci.map(|c| c.r_n_star));
    if !d && !n {
        return None;
    }
    let words = |name: &str, span: [f64; 2], iv: Option<[f64; 2]>| {
        format!(
            "{name} fits within 0.1 % of the best objective anywhere in {}–{}{}",
            short(span[0]),
            short(span[1]),
            iv.map_or(String::new(), |[lo, hi]| format!(
                " (bootstrap interval {}–{})",
                short(lo),
                short(hi)
            ))
        )
    };
    let mut parts = Vec::new();
    if d {
        parts.push(words("R_D*", near.r_d_star, ci.map(|c| c.r_d_star)));
    }
    if n {
        parts.push(words("R_N*", near.r_n_star, ci.map(|c| c.r_n_star)));
    }
    let mut w = Warning::new(
        "repetition_weakly_identified",
        "data_constrained",
        format!(
            "the runs do not pin down how fast repeated data lose their worth: {} — read the \
             repetition constants as a range, not one number",
            parts.join("; ")
        ),
        "add runs at more epochs per unique-token pool (and pools of more sizes) to tell the \
         constants apart; the law's losses at the epochs trained stand",
    )
    .with("R_D_star_low", near.r_d_star[0])
    .with("R_D_star_high", near.r_d_star[1])
    .with("R_N_star_low", near.r_n_star[0])
    .with("R_N_star_high", near.r_n_star[1]);
    if let Some(c) = ci {
        w = w
            .with("R_D_star_ci_low", c.r_d_star[0])
            .with("R_D_star_ci_high", c.r_d_star[1]);
    }
    Some(w)
}

/// Three significant figures, in scientific notation past 1e5.
fn short(v: f64) -> String {
    if v.abs() >= 1e5 {
        format!("{v:.2e}")
    } else {
        let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
        format!("{v:.digits$}")
    }
}

fn allocation(law: &DataConstrainedLaw, c: f64, pool: Option<f64>) -> DataConstrainedAllocation {
    let (n_opt, d_opt, loss) = data_constrained::allocate(law, c, None);
    let capped = pool.map(|u| data_constrained::allocate(law, c, Some(u)));
    DataConstrainedAllocation {
        compute: c,
        n_opt,
        d_opt,
        loss,
        unique_tokens: pool,
        capped_n_opt: capped.map(|x| x.0),
        capped_d_opt: capped.map(|x| x.1),
        capped_loss: capped.map(|x| x.2),
        capped_epochs: capped.zip(pool).map(|(x, u)| x.1 / u),
    }
}

/// Both laws refitted without the runs `holdout` leaves out, and their predictions of them.
fn holdout(
    all: &[&Row],
    h: Holdout,
    options: &DataConstrainedOptions,
    warnings: &mut Vec<Warning>,
) -> Option<DataConstrainedHoldout> {
    let (kind, k, train, test) = split(all, h, options.params);
    if test.is_empty() {
        return None;
    }
    let Some(fitted) = data_constrained::fit(&repeat_points(&train, options.params), options.delta)
    else {
        warnings.push(Warning::problem(
            "data_constrained: the hold-out fit failed (too few runs, or none repeating its \
             data, are left to fit)",
        ));
        return None;
    };
    let plain = fitted.chinchilla;
    let (points, rel_error_max, rel_error_mean) = holdout_points(
        &test,
        options.params,
        |r, n, d| fitted.law.loss(n, d, r.unique_tokens),
        None,
    );
    let (_, chinchilla_rel_error_max, chinchilla_rel_error_mean) =
        holdout_points(&test, options.params, |_, n, d| plain.loss(n, d), None);
    Some(DataConstrainedHoldout {
        kind: kind.into(),
        k,
        fitted_points: train.len(),
        law: fitted.law,
        rel_error_max,
        rel_error_mean,
        chinchilla_rel_error_max,
        chinchilla_rel_error_mean,
        points,
    })
}
