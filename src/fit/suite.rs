//! A study's fits in one pass: every law its `fits:` list names, the allocation for its
//! budgets, the hold-out check and the warnings, as one serialisable [`FitReport`] (what
//! `fits.json` holds and the report reads). Still pure: rows in, numbers out.

pub use super::report::*;

use super::approach3::{ChinchillaOptions, fit_chinchilla};
use super::bootstrap::{self, Interval};
use super::chinchilla::{Point, StartGrid};
use super::curve::{self, CurveGroup, CurveOptions};
use super::diagnose::{self, Evidence, LeftOut, Warning};
use super::frontier::frontier;
use super::hyper::{self, SweepRun};
use super::isoflop::{self, IsoPoint};
use super::options::{
    GridKind, Holdout, LawRequest, MetricForm, ParamsConvention, PowerForm, PowerX,
};
use super::power::{self, Form};

/// One run as the fits see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub params_total: f64,
    pub params_non_embedding: f64,
    pub tokens: f64,
    /// The unique tokens the run's D were drawn from (U_D): `tokens / unique_tokens` is its
    /// epochs. `None` where the data never repeat (the synthetic languages) or it is unknown.
    pub unique_tokens: Option<f64>,
    pub loss: f64,
    /// Training FLOPs (6ND for imported rows).
    pub flops: f64,
    pub budget: Option<f64>,
    pub wall_seconds: Option<f64>,
    pub peak_rss_bytes: Option<f64>,
    /// Threads the run trained with (unknown for imported rows and mock runs).
    pub threads: Option<f64>,
    /// Downstream metrics by name (task accuracies imported with `results.metrics`).
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// The recipe it belongs to (`variants.column` of imported runs).
    pub variant: Option<String>,
}

impl Row {
    pub fn n(&self, convention: ParamsConvention) -> f64 {
        match convention {
            ParamsConvention::Total => self.params_total,
            ParamsConvention::NonEmbedding => self.params_non_embedding,
        }
    }
}

/// One logged point of a learning curve (for the frontier).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurveRow {
    pub params_total: f64,
    pub params_non_embedding: f64,
    /// Tokens trained so far.
    pub tokens: f64,
    /// Compute spent so far.
    pub flops: f64,
    pub loss: f64,
}

/// What to fit besides the laws.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub fits: &'a [LawRequest],
    /// Learning curves (trained studies; empty for imported results).
    pub curves: &'a [CurveRow],
    pub holdout: Option<Holdout>,
    /// The rollout audit over model sizes (`holdout.rollout: sizes`).
    pub rollout: bool,
    /// The leave-one-out over token counts (`holdout.leave_one_out: tokens`).
    pub leave_one_out_tokens: bool,
    /// Budgets to allocate (the final run's, the IsoFLOP budgets).
    pub budgets: Vec<f64>,
    pub seed: u64,
    /// Constrained optimum for this many wall-clock seconds (needs a `cost` fit).
    pub wall_budget: Option<f64>,
    /// Cap on parameters for the constrained optima.
    pub max_params: Option<f64>,
    /// The data's true entropy rate and its standard error (synthetic data).
    pub entropy: Option<(f64, f64)>,
    /// The validation set's own floor: the true mean −ln p of its targets (synthetic data),
    /// which the measured losses, and so E, approach.
    pub val_floor: Option<f64>,
    /// Planned runs that are not among `rows` because they failed or diverged.
    pub left_out: Vec<LeftOut>,
    /// The final run's budget (for the extrapolation warning).
    pub final_budget: Option<f64>,
    /// `final.unique_tokens`: the unique tokens the final budget's data-constrained
    /// allocation may draw from (else the runs' largest pool).
    pub final_unique_tokens: Option<f64>,
    /// Every run of a learning-rate sweep (empty without one): `rows` holds the envelope.
    pub sweep: Vec<SweepRun>,
    /// Learning-rate transfer, when the study transfers one (reported under `hyper`).
    pub transfer: Option<hyper::TransferReport>,
    /// A batch sweep's options.
    pub batch: super::batch::BatchOptions,
    /// Every run's curve with its schedule, by size (and learning rate), for `law: curve`.
    pub curve_groups: &'a [CurveGroup],
    /// Runs the pipeline could not hand to the curve law, and why.
    pub curve_unusable: Vec<curve::Unusable>,
}

pub(super) fn pair(i: Interval) -> [f64; 2] {
    [i.lo, i.hi]
}

pub(super) fn grid(kind: GridKind) -> StartGrid {
    match kind {
        GridKind::Full => StartGrid::full(),
        GridKind::Coarse => StartGrid::coarse(),
    }
}

pub(super) fn points(rows: &[&Row], params: ParamsConvention) -> Vec<Point> {
    rows.iter()
        .map(|r| Point {
            n: r.n(params),
            d: r.tokens,
            loss: r.loss,
        })
        .collect()
}

/// Fit everything `request` asks for. Problems become warnings in the report, never panics
/// or NaNs; a law that cannot be fitted is absent with a warning saying why.
pub fn fit_all(rows: &[Row], request: &Request) -> FitReport {
    let mut report = FitReport {
        points: rows.len(),
        entropy: request.entropy.map(|(h, se)| [h, se]),
        val_floor: request.val_floor,
        ..FitReport::default()
    };
    let all: Vec<&Row> = rows.iter().collect();
    for spec in request.fits {
        match spec.clone() {
            LawRequest::Chinchilla {
                bootstrap,
                confidence,
                delta,
                grid: kind,
                bootstrap_starts,
                params,
                pinned,
                vpnls,
            } => fit_chinchilla(
                &all,
                request,
                &mut report,
                &ChinchillaOptions {
                    resamples: bootstrap,
                    confidence,
                    delta,
                    kind,
                    bootstrap_starts,
                    params,
                    pinned,
                    vpnls,
                },
            ),
            LawRequest::Isoflop {
                params,
                bootstrap,
                confidence,
            } => fit_isoflop(rows, request, &mut report, params, bootstrap, confidence),
            LawRequest::Power {
                x,
                form,
                params,
                bootstrap,
                confidence,
            } => fit_power(
                rows,
                request,
                &mut report,
                (x, form, params),
                bootstrap,
                confidence,
            ),
            LawRequest::Overtrain {
                bootstrap,
                confidence,
                delta,
                params,
                vpnls,
            } => super::overtrain_report::fit_overtrain(
                &all,
                request,
                &mut report,
                super::overtrain_report::OvertrainOptions {
                    resamples: bootstrap,
                    confidence,
                    delta,
                    params,
                    vpnls,
                },
            ),
            LawRequest::DataConstrained {
                bootstrap,
                confidence,
                delta,
                params,
            } => super::data_constrained_report::fit_data_constrained(
                &all,
                request,
                &mut report,
                super::data_constrained_report::DataConstrainedOptions {
                    resamples: bootstrap,
                    confidence,
                    delta,
                    params,
                },
            ),
            LawRequest::Cost => {
                report.cost = Some(super::cost_report::fit_cost(rows, &mut report.warnings))
            }
            LawRequest::Curve(curve_request) => {
                let options = CurveOptions {
                    request: curve_request,
                    seed: request.seed,
                };
                let mut c = curve::fit(request.curve_groups, &options);
                c.unusable
                    .splice(0..0, request.curve_unusable.iter().cloned());
                report.warnings.extend(curve::heldout::warnings(&c));
                if options.request.informed && c.informed.is_none() && !c.groups.is_empty() {
                    report.warnings.push(Warning::problem(
                        "curve: the curve-informed L(N, D) could not be fitted to the curve laws' \
                         predictions (it needs curve laws at 3 or more sizes)",
                    ));
                }
                report.curve = Some(c);
            }
            // After every loss law: its prediction from compute goes through their fits.
            LawRequest::Metric(_) => {}
            LawRequest::Frontier { params } => match frontier(request.curves, params) {
                Some(f) => report.frontier = Some(f),
                None => report.warnings.push(Warning::problem(
                    "frontier: the learning curves do not span enough compute (2+ buckets of the \
                     lower envelope are needed)",
                )),
            },
        }
    }
    for spec in request.fits {
        match spec {
            LawRequest::Metric(m) if m.form == MetricForm::ErrorFromLoss => {
                super::metric_report::fit_metric(&all, request, &mut report, m);
            }
            LawRequest::Metric(m) => {
                super::accuracy_report::fit_accuracy(&all, request, &mut report, m);
            }
            _ => {}
        }
    }
    super::data_constrained_report::repeated_data(&all, request, &mut report);
    super::cost_report::constrain(&mut report, request);
    if let (Some(c), Some(ch)) = (&mut report.curve, &report.chinchilla)
        && let Some(informed) = &mut c.informed
    {
        informed.against_endpoint = curve::informed::against(informed, ch);
    }
    report.hyper = hyper::report(
        &request.sweep,
        &request.batch,
        ETA_RESAMPLES,
        ETA_CONFIDENCE,
        request.seed,
    );
    if let Some(h) = &mut report.hyper {
        h.transfer = request.transfer.clone();
    }
    diagnose_report(rows, request, &mut report);
    report
}

/// Approach 2 on the runs of an IsoFLOP sweep, with bootstrap intervals of its exponents.
fn fit_isoflop(
    rows: &[Row],
    request: &Request,
    report: &mut FitReport,
    params: ParamsConvention,
    bootstrap: u64,
    confidence: f64,
) {
    let iso: Vec<IsoPoint> = rows
        .iter()
        .filter_map(|r| {
            Some(IsoPoint {
                budget: r.budget?,
                n: r.n(params),
                d: r.tokens,
                loss: r.loss,
            })
        })
        .collect();
    match isoflop::fit(&iso) {
        Ok(f) => {
            let warnings: Vec<String> = f.refusals.iter().map(|r| r.to_string()).collect();
            let ci = bootstrap::resample_intervals(
                iso.len(),
                bootstrap as usize,
                confidence,
                request.seed,
                &|idx| {
                    let sample: Vec<IsoPoint> = idx.iter().map(|&i| iso[i]).collect();
                    isoflop::fit(&sample).ok().map(|f| vec![f.a, f.b])
                },
            )
            .map(|(iv, failed)| ExponentIntervals {
                a: pair(iv[0]),
                b: pair(iv[1]),
                resamples: bootstrap as usize,
                failed,
                confidence,
            });
            report
                .warnings
                .extend(warnings.iter().map(Warning::problem));
            report.isoflop = Some(IsoflopReport {
                a: f.a,
                b: f.b,
                a_intercept: f.a_intercept,
                b_intercept: f.b_intercept,
                ci,
                budgets: f.optima,
                warnings,
            });
        }
        Err(refusals) => {
            report
                .warnings
                .extend(refusals.iter().map(|r| Warning::problem(r.to_string())));
            report.warnings.push(Warning::problem(
                "isoflop: fewer than 2 budgets have a usable optimum; no exponents",
            ));
        }
    }
}

/// Single-variable laws of loss over one quantity, each asked-for form with its intervals.
fn fit_power(
    rows: &[Row],
    request: &Request,
    report: &mut FitReport,
    (x, form, params): (PowerX, PowerForm, ParamsConvention),
    bootstrap: u64,
    confidence: f64,
) {
    let xs: Vec<f64> = rows
        .iter()
        .map(|r| match x {
            PowerX::Params => r.n(params),
            PowerX::Tokens => r.tokens,
            PowerX::Compute => r.flops,
        })
        .collect();
    let ys: Vec<f64> = rows.iter().map(|r| r.loss).collect();
    let forms: Vec<Form> = match form {
        PowerForm::Offset => vec![Form::Offset],
        PowerForm::Pure => vec![Form::Pure],
        PowerForm::Log => vec![Form::Log],
        PowerForm::All => vec![Form::Offset, Form::Pure, Form::Log],
    };
    let compared = power::compare(&xs, &ys);
    for f in forms {
        match compared.iter().find(|c| c.fit.form == f) {
                Some(c) => {
                    let ci = bootstrap::resample_intervals(
                        xs.len(),
                        bootstrap as usize,
                        confidence,
                        request.seed,
                        &|idx| {
                            let sx: Vec<f64> = idx.iter().map(|&i| xs[i]).collect();
                            let sy: Vec<f64> = idx.iter().map(|&i| ys[i]).collect();
                            power::refit(&sx, &sy, &c.fit).map(|p| vec![p.e, p.a, p.alpha])
                        },
                    )
                    .map(|(iv, failed)| PowerIntervals {
                        e: pair(iv[0]),
                        a: pair(iv[1]),
                        alpha: pair(iv[2]),
                        resamples: bootstrap as usize,
                        failed,
                        confidence,
                    });
                    report.power.push(PowerReport {
                        x,
                        params,
                        ci,
                        fit: c.fit,
                        holdout_rel_error: c.holdout_rel_error,
                    })
                }
                None => report.warnings.push(Warning::problem(format!(
                    "power ({x:?}, {f:?}): cannot be fitted to these runs (too few distinct values, or non-positive ones)"
                ))),
            }
    }
}

/// Bootstrap resamples and confidence of the η*(N, D) law's intervals.
const ETA_RESAMPLES: usize = 200;
const ETA_CONFIDENCE: f64 = 0.95;

/// Append the [`diagnose`] warnings and list every warning's code.
fn diagnose_report(rows: &[Row], request: &Request, report: &mut FitReport) {
    let params = report
        .chinchilla
        .as_ref()
        .map_or(ParamsConvention::Total, |c| c.params);
    let all: Vec<&Row> = rows.iter().collect();
    let pts = points(&all, params);
    let flops: Vec<f64> = rows.iter().map(|r| r.flops).collect();
    let found = diagnose::diagnose(
        report,
        &Evidence {
            points: &pts,
            flops: &flops,
            entropy: request.entropy,
            val_floor: request.val_floor,
            left_out: &request.left_out,
            final_budget: request.final_budget,
        },
    );
    // The runs left out come first: they qualify every number after them.
    let mut warnings = found;
    warnings.append(&mut report.warnings);
    warnings.sort_by_key(|w| !w.code.starts_with("runs_"));
    report.warnings = warnings;
    report.warning_codes = report.warnings.iter().map(|w| w.code.clone()).collect();
    report.warning_codes.dedup();
    report.questioning_codes = report
        .warning_codes
        .iter()
        .filter(|c| diagnose::questions_the_law(c))
        .cloned()
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn row(n: f64, d: f64, loss: f64, budget: Option<f64>) -> Row {
        Row {
            name: format!("n{n:e}-d{d:e}"),
            params_total: n,
            params_non_embedding: n,
            tokens: d,
            unique_tokens: None,
            loss,
            flops: 6.0 * n * d,
            budget,
            wall_seconds: None,
            peak_rss_bytes: None,
            threads: None,
            metrics: Default::default(),
            variant: None,
        }
    }

    /// Single-variable laws and IsoFLOP exponents get bootstrap intervals that contain the
    /// law the points came from.
    #[test]
    fn power_and_isoflop_fits_carry_bootstrap_intervals() {
        let mut rng = SplitMix64::new(11);
        // L(N) = 1.7 + 400·N^−0.34 with 1 % noise.
        let rows: Vec<Row> = (0..24)
            .map(|i| {
                let n = 1e6 * 1.5f64.powi(i);
                let noise = 1.0 + 0.01 * (2.0 * rng.next_f64() - 1.0);
                row(n, 1e9, (1.7 + 400.0 * n.powf(-0.34)) * noise, None)
            })
            .collect();
        let fits = [LawRequest::Power {
            x: PowerX::Params,
            form: PowerForm::Offset,
            bootstrap: 200,
            confidence: 0.95,
            params: ParamsConvention::Total,
        }];
        let request = Request {
            fits: &fits,
            curves: &[],
            holdout: None,
            rollout: false,
            leave_one_out_tokens: false,
            budgets: Vec::new(),
            seed: 1,
            wall_budget: None,
            max_params: None,
            entropy: None,
            val_floor: None,
            left_out: Vec::new(),
            final_budget: None,
            final_unique_tokens: None,
            sweep: Vec::new(),
            curve_groups: &[],
            curve_unusable: Vec::new(),
            transfer: None,
            batch: Default::default(),
        };
        let report = fit_all(&rows, &request);
        let ci = report.power[0].ci.as_ref().expect("intervals");
        assert!(ci.alpha[0] <= 0.34 && 0.34 <= ci.alpha[1], "{:?}", ci.alpha);
        assert!(ci.alpha[1] - ci.alpha[0] > 1e-3, "a real interval");
        assert_eq!(ci.resamples, 200);

        // Noise-free IsoFLOP profiles of the rounded Chinchilla law: a = 0.4516.
        let law = crate::fit::chinchilla::Law {
            e: 1.69,
            a: 406.4,
            b: 410.7,
            alpha: 0.34,
            beta: 0.28,
        };
        let mut iso = Vec::new();
        for k in 0..6 {
            let c = 1e18 * 10f64.powi(k);
            let opt = crate::fit::chinchilla::allocate(&law, c);
            for j in -4..=4 {
                let n = opt.n_opt * (0.25 * j as f64).exp();
                let d = c / (6.0 * n);
                iso.push(row(n, d, law.loss(n, d), Some(c)));
            }
        }
        let fits = [LawRequest::Isoflop {
            bootstrap: 100,
            confidence: 0.9,
            params: ParamsConvention::Total,
        }];
        let report = fit_all(
            &iso,
            &Request {
                fits: &fits,
                ..request
            },
        );
        let iso = report.isoflop.expect("isoflop fit");
        let ci = iso.ci.expect("intervals");
        assert!(ci.a[0] <= iso.a && iso.a <= ci.a[1]);
        assert!((iso.a - 0.4516).abs() < 2e-3, "{}", iso.a);
    }
}
