use super::*;
use crate::fit::chinchilla::Law;
use crate::fit::options::{BootstrapStarts, GridKind, LawRequest, ParamsConvention};
use crate::fit::reduced::Candidate;
use crate::fit::suite::{
    AllocationReport, ChinchillaReport, ParamIntervals, Request, Row, fit_all,
};
use crate::rng::SplitMix64;

const CHINCHILLA: Law = crate::fit::chinchilla::CHINCHILLA_2022;

/// A hand-made Chinchilla report of `law` with interval `ci` for every parameter
/// (± `rel` of each value; 0 gives zero width) and bootstrap laws spread the same way.
fn report(law: Law, rel: f64) -> ChinchillaReport {
    let iv = |v: f64| [v * (1.0 - rel), v * (1.0 + rel)];
    let spread = |k: f64| Law {
        e: law.e * (1.0 + rel * k),
        a: law.a * (1.0 + rel * k),
        b: law.b * (1.0 + rel * k),
        alpha: law.alpha * (1.0 + rel * k),
        beta: law.beta * (1.0 + rel * k),
    };
    ChinchillaReport {
        e: law.e,
        a: law.a,
        b: law.b,
        alpha: law.alpha,
        beta: law.beta,
        objective: 0.0,
        starts: 1,
        starts_at_best: 1,
        grad_norm: 0.0,
        delta: 1e-3,
        params: ParamsConvention::Total,
        points: 25,
        ci: Some(ParamIntervals {
            e: iv(law.e),
            a: iv(law.a),
            b: iv(law.b),
            alpha: iv(law.alpha),
            beta: iv(law.beta),
        }),
        bootstrap_resamples: 40,
        confidence: 0.95,
        bootstrap_laws: (0..40).map(|i| spread(i as f64 / 20.0 - 1.0)).collect(),
        residuals: Vec::new(),
        degenerate: Vec::new(),
        reduced: Vec::new(),
        pinned: None,
        vpnls: None,
    }
}

/// 5 sizes × 5 token counts around Chinchilla's optimum, from `law`.
fn points(law: &Law) -> Vec<Point> {
    let mut out = Vec::new();
    for i in 0..5 {
        for j in 0..5 {
            let n = 1e7 * 3f64.powi(i);
            let d = 2e8 * 3f64.powi(j);
            out.push(Point {
                n,
                d,
                loss: law.loss(n, d),
            });
        }
    }
    out
}

fn codes(c: ChinchillaReport, pts: &[Point], entropy: Option<(f64, f64)>) -> Vec<String> {
    let fits = FitReport {
        chinchilla: Some(c),
        ..FitReport::default()
    };
    let flops: Vec<f64> = pts.iter().map(|p| 6.0 * p.n * p.d).collect();
    diagnose(
        &fits,
        &Evidence {
            points: pts,
            flops: &flops,
            entropy,
            ..Evidence::default()
        },
    )
    .into_iter()
    .map(|w| w.code)
    .collect()
}

#[test]
fn a_sound_law_raises_nothing() {
    let pts = points(&CHINCHILLA);
    assert_eq!(
        codes(report(CHINCHILLA, 0.05), &pts, Some((1.69, 0.01))),
        Vec::<String>::new()
    );
}

#[test]
fn e_at_zero_with_a_zero_width_interval() {
    let law = Law {
        e: 5.9e-24,
        ..CHINCHILLA
    };
    let got = codes(report(law, 0.0), &points(&law), None);
    assert!(got.contains(&"param_at_bound".into()), "{got:?}");
    assert!(got.contains(&"interval_degenerate".into()), "{got:?}");
    // Zero width for every parameter: five degenerate intervals.
    assert_eq!(
        got.iter().filter(|c| *c == "interval_degenerate").count(),
        5
    );
}

/// An interval of honest width whose resamples almost all returned the fitted value is
/// degenerate too.
#[test]
fn resamples_that_did_not_move() {
    let mut c = report(CHINCHILLA, 0.05);
    for l in c.bootstrap_laws.iter_mut().skip(2) {
        l.e = CHINCHILLA.e;
    }
    assert_eq!(degenerate(&c), vec!["E"]);
    assert!(degenerate(&report(CHINCHILLA, 0.05)).is_empty());
}

/// E estimates the floor of the validation set the losses were measured on: an interval
/// that holds that floor but not the language's entropy (the sample's luck) is no bias, and
/// one that misses both still is.
#[test]
fn e_is_held_to_the_span_between_the_entropy_and_the_validation_floor() {
    let law = Law {
        e: 1.72,
        ..CHINCHILLA
    };
    let c = report(law, 0.005);
    let [lo, hi] = c.ci.as_ref().unwrap().e;
    assert!(lo > 1.70 && hi < 1.74, "[{lo}, {hi}]");
    let pts = points(&law);
    let flops: Vec<f64> = pts.iter().map(|p| 6.0 * p.n * p.d).collect();
    let with = |val_floor: Option<f64>| -> Vec<String> {
        let fits = FitReport {
            chinchilla: Some(c.clone()),
            ..FitReport::default()
        };
        let ev = Evidence {
            points: &pts,
            flops: &flops,
            entropy: Some((1.69, 0.0)),
            val_floor,
            ..Evidence::default()
        };
        diagnose(&fits, &ev).into_iter().map(|w| w.code).collect()
    };
    let excludes = "e_interval_excludes_entropy".to_string();
    assert!(with(None).contains(&excludes));
    assert!(
        !with(Some(1.72)).contains(&excludes),
        "{:?}",
        with(Some(1.72))
    );
    assert!(with(Some(1.695)).contains(&excludes));
}

#[test]
fn e_below_the_entropy_and_an_interval_that_excludes_it() {
    let law = Law {
        e: 1.2,
        ..CHINCHILLA
    };
    let got = codes(report(law, 0.05), &points(&law), Some((2.295, 0.002)));
    assert!(got.contains(&"e_below_entropy".into()), "{got:?}");
    assert!(
        got.contains(&"e_interval_excludes_entropy".into()),
        "{got:?}"
    );
    let law = Law {
        e: 3.35,
        ..CHINCHILLA
    };
    let got = codes(report(law, 0.03), &points(&law), Some((2.295, 0.002)));
    assert!(!got.contains(&"e_below_entropy".into()), "{got:?}");
    assert!(
        got.contains(&"e_interval_excludes_entropy".into()),
        "{got:?}"
    );
    // 0.1 % below the floor with an interval that reaches it: the floor, within the fit's
    // uncertainty.
    let law = Law {
        e: 0.9979,
        ..CHINCHILLA
    };
    let got = codes(report(law, 0.01), &points(&law), Some((0.999, 0.0)));
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn an_interval_wider_than_e_means_unidentified() {
    let mut c = report(CHINCHILLA, 0.05);
    c.ci.as_mut().unwrap().e = [0.1, 2.5];
    let got = codes(c, &points(&CHINCHILLA), None);
    assert_eq!(got, vec!["e_unidentified".to_string()]);
}

#[test]
fn steep_exponents_are_implausible() {
    let law = Law {
        alpha: 1.29,
        beta: 1.01,
        ..CHINCHILLA
    };
    let got = codes(report(law, 0.05), &points(&law), None);
    assert_eq!(
        got.iter().filter(|c| *c == "exponent_implausible").count(),
        2
    );
}

#[test]
fn too_few_sizes_for_five_parameters() {
    let pts: Vec<Point> = points(&CHINCHILLA).into_iter().take(10).collect();
    let got = codes(report(CHINCHILLA, 0.05), &pts, None);
    assert_eq!(got, vec!["too_few_levels".to_string()]);
}

/// Residuals positive for the small models and negative for the large ones: the law
/// misses a trend along N; alternating signs raise nothing.
#[test]
fn residual_signs_in_blocks() {
    let mut pts = points(&CHINCHILLA);
    for (i, p) in pts.iter_mut().enumerate() {
        p.loss *= if i < 12 { 1.01 } else { 0.99 };
    }
    let got = codes(report(CHINCHILLA, 0.05), &pts, None);
    assert_eq!(got, vec!["residual_structure".to_string()], "{got:?}");
    let mut pts = points(&CHINCHILLA);
    for (i, p) in pts.iter_mut().enumerate() {
        // A checkerboard over (size, tokens): signs alternate along N and along D.
        p.loss *= if (i / 5 + i % 5) % 2 == 0 { 1.01 } else { 0.99 };
    }
    assert!(codes(report(CHINCHILLA, 0.05), &pts, None).is_empty());
    assert!(runs_z(&[true, true, true, true, false, false, false, false]).unwrap() < -2.0);
    assert_eq!(runs_z(&[true, true]), None);
}

#[test]
fn allocation_outside_the_grid_and_far_extrapolation() {
    let pts = points(&CHINCHILLA);
    let flops: Vec<f64> = pts.iter().map(|p| 6.0 * p.n * p.d).collect();
    let largest = flops.iter().copied().fold(0.0, f64::max);
    let alloc = |tpp: f64| AllocationReport {
        compute: 1e21,
        n_opt: 1e9,
        d_opt: 1e9 * tpp,
        tokens_per_param: tpp,
        loss: 2.0,
        ci: None,
    };
    let run = |tpp: f64, budget: f64| -> Vec<String> {
        let fits = FitReport {
            allocation: vec![alloc(tpp)],
            ..FitReport::default()
        };
        let ev = Evidence {
            points: &pts,
            flops: &flops,
            final_budget: Some(budget),
            ..Evidence::default()
        };
        diagnose(&fits, &ev).into_iter().map(|w| w.code).collect()
    };
    // The grid's D/N spans 20·3⁻⁴ ≈ 0.25 to 20·3⁴ = 1620.
    assert_eq!(run(5000.0, 2.0 * largest), vec!["optimum_outside_grid"]);
    assert_eq!(run(20.0, 100.0 * largest), vec!["extrapolation_far"]);
    assert!(run(20.0, 2.0 * largest).is_empty());
}

#[test]
fn runs_left_out_are_named() {
    let left = [LeftOut {
        name: "l2-d64-t4e5".into(),
        status: "diverged".into(),
        reason: "training loss became NaN at step 12".into(),
        ..LeftOut::default()
    }];
    let w = diagnose(
        &FitReport::default(),
        &Evidence {
            left_out: &left,
            ..Evidence::default()
        },
    );
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].code, "runs_left_out");
    assert!(
        w[0].message
            .contains("l2-d64-t4e5 (diverged: training loss became NaN")
    );
    assert!(diagnose(&FitReport::default(), &Evidence::default()).is_empty());
}

#[test]
fn a_reduced_law_that_fits_as_well() {
    let cand = |form: &str, aic: f64| Candidate {
        form: form.into(),
        law: Law {
            e: 0.0,
            ..CHINCHILLA
        },
        parameters: if form == "free_e" { 5 } else { 4 },
        rmse_log: 0.01,
        aic,
        delta_aic: 0.0,
    };
    let mut c = report(CHINCHILLA, 0.05);
    c.reduced = vec![cand("free_e", -100.0), cand("zero_e", -101.0)];
    let got = codes(c.clone(), &points(&CHINCHILLA), None);
    assert_eq!(got, vec!["reduced_law_preferred".to_string()]);
    // An E-free law with α ≈ 0.02 only imitates a floor: nothing to say.
    c.reduced[1].law.alpha = 0.02;
    assert!(codes(c.clone(), &points(&CHINCHILLA), None).is_empty());
    // E fixed at the entropy fits as well, but the free E agrees with it: nothing to say.
    c.reduced = vec![cand("free_e", -100.0), cand("fixed_e", -101.0)];
    assert!(codes(c.clone(), &points(&CHINCHILLA), Some((1.69, 0.01))).is_empty());
    // ... and when the free E's interval excludes the entropy, the fixed law is named.
    let got = codes(c, &points(&CHINCHILLA), Some((2.3, 0.01)));
    assert!(got.contains(&"reduced_law_preferred".into()), "{got:?}");
}

fn fit(rows: &[Row], entropy: Option<(f64, f64)>) -> FitReport {
    let fits = [LawRequest::Chinchilla {
        bootstrap: 40,
        confidence: 0.95,
        delta: 1e-3,
        grid: GridKind::Coarse,
        bootstrap_starts: BootstrapStarts::Warm,
        params: ParamsConvention::Total,
        pinned: None,
        vpnls: false,
    }];
    fit_all(
        rows,
        &Request {
            fits: &fits,
            curves: &[],
            holdout: None,
            rollout: false,
            leave_one_out_tokens: false,
            budgets: vec![6.0 * 3e8 * 6e9],
            seed: 3,
            wall_budget: None,
            max_params: None,
            entropy,
            val_floor: None,
            left_out: Vec::new(),
            final_budget: None,
            final_unique_tokens: None,
            sweep: Vec::new(),
            curve_groups: &[],
            curve_unusable: Vec::new(),
            transfer: None,
            batch: Default::default(),
        },
    )
}

fn rows(law: &Law, noise: f64, sizes: usize, tokens: usize) -> Vec<Row> {
    let mut rng = SplitMix64::new(9);
    let mut out = Vec::new();
    for i in 0..sizes {
        for j in 0..tokens {
            let n = 1e7 * 3f64.powi(i as i32);
            let d = 2e8 * 3f64.powi(j as i32);
            let eps = 1.0 + noise * (2.0 * rng.next_f64() - 1.0);
            out.push(Row {
                name: format!("r{i}{j}"),
                params_total: n,
                params_non_embedding: n,
                tokens: d,
                unique_tokens: None,
                loss: law.loss(n, d) * eps,
                flops: 6.0 * n * d,
                budget: None,
                wall_seconds: None,
                peak_rss_bytes: None,
                threads: None,
                metrics: Default::default(),
                variant: None,
            });
        }
    }
    out
}

/// End to end through `fit_all`: a known law plus 0.3 % noise is trusted (E's interval
/// holds the floor, no warning about E); the same law with E = 0 and a pure power law
/// each say E is at its bound; a 2 × 3 grid says it is too small.
#[test]
fn fitted_reports_warn_where_the_data_call_for_it() {
    let good = fit(&rows(&CHINCHILLA, 0.003, 5, 5), Some((1.69, 0.001)));
    let c = good.chinchilla.as_ref().unwrap();
    let ci = c.ci.as_ref().unwrap();
    assert!(ci.e[0] <= 1.69 && 1.69 <= ci.e[1], "{:?}", ci.e);
    for code in [
        "param_at_bound",
        "e_below_entropy",
        "e_interval_excludes_entropy",
        "exponent_implausible",
        "too_few_levels",
        "interval_degenerate",
    ] {
        assert!(
            !good.warning_codes.contains(&code.into()),
            "{:?}",
            good.warnings
        );
    }
    assert_eq!(c.reduced.len(), 3);

    let zero = Law {
        e: 0.0,
        ..CHINCHILLA
    };
    let r = fit(&rows(&zero, 0.003, 5, 5), None);
    assert!(
        r.warning_codes.contains(&"param_at_bound".into())
            || r.warning_codes.contains(&"reduced_law_preferred".into()),
        "{:?}",
        r.warnings
    );

    let small = fit(&rows(&CHINCHILLA, 0.003, 2, 3), Some((1.69, 0.001)));
    assert!(
        small.warning_codes.contains(&"too_few_levels".into()),
        "{:?}",
        small.warnings
    );
}

/// Every code the book's warnings table lists says whether it questions the law, and says
/// it as the code does.
#[test]
fn the_book_lists_every_code_with_its_verdict() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/trust.md"),
    )
    .unwrap();
    let mut listed = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split(" | ").collect();
        if let Some(code) = line
            .strip_prefix("| `")
            .and_then(|l| l.split('`').next())
            .filter(|_| cells.len() == 4)
        {
            let verdict = cells[3].trim_end_matches(" |");
            assert_eq!(
                verdict == "yes",
                super::questions_the_law(code),
                "{code}: the book says {verdict}"
            );
            listed.push(code.to_string());
        }
    }
    for code in super::QUESTIONING_CODES {
        assert!(
            listed.iter().any(|c| c == code),
            "{code} is not in trust.md"
        );
    }
    for code in [
        "optimum_outside_grid",
        "lr_at_edge",
        "batch_at_edge",
        "batch_law_unfitted",
        "repetition_weakly_identified",
        "data_repeated",
        "cost_mixed_machines",
        "final_skipped",
        "metric_extrapolated",
        "metric_linear",
        "metric_midpoint_outside",
        "metric_sigmoid_step",
    ] {
        assert!(
            listed.iter().any(|c| c == code),
            "{code} is not in trust.md"
        );
    }
}
