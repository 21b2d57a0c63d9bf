//! The curve laws recover a known law from curves it generated, and predict schedules they
//! were not fitted on.

use std::sync::Arc;

use super::*;

/// A cosine schedule (warmup 5 %, floor 10 % of the peak) of `steps` at `peak`.
pub fn cosine(peak: f64, steps: u64) -> (Vec<f64>, usize) {
    let warmup = ((0.05 * steps as f64).round() as usize).max(1);
    let after = steps as usize - warmup;
    let lrs = (0..steps as usize)
        .map(|k| {
            if k < warmup {
                return peak * (k + 1) as f64 / warmup as f64;
            }
            let p = (k - warmup) as f64 / (after - 1).max(1) as f64;
            0.1 * peak + 0.5 * (1.0 + (std::f64::consts::PI * p).cos()) * 0.9 * peak
        })
        .collect();
    (lrs, warmup)
}

/// A WSD schedule decaying linearly over its last 20 %.
fn wsd(peak: f64, steps: u64) -> (Vec<f64>, usize) {
    let warmup = ((0.05 * steps as f64).round() as usize).max(1);
    let decay = (0.2 * steps as f64).round() as usize;
    let start = steps as usize - decay;
    let lrs = (0..steps as usize)
        .map(|k| {
            if k < warmup {
                peak * (k + 1) as f64 / warmup as f64
            } else if k < start {
                peak
            } else {
                let t = (k - start) as f64 / (decay - 1) as f64;
                peak + (0.1 * peak - peak) * t
            }
        })
        .collect();
    (lrs, warmup)
}

pub const TRUTH: CurveParams = CurveParams {
    l0: 2.0,
    a: 0.9,
    alpha: 0.45,
    b: 150.0,
    beta: Some(0.6),
    gamma: Some(0.5),
    c: Some(2.0),
    train_offset: 0.0,
    rms_rel: 0.0,
    points: 0,
};

/// A run of `steps` under `schedule`, its validation losses every 50 steps from `law` with
/// seeded relative noise `noise`.
fn run(name: &str, (lrs, warmup): (Vec<f64>, usize), noise: f64, seed: u64) -> CurveRun {
    let steps = lrs.len() as u64;
    let at: Vec<u64> = (1..=steps).filter(|s| s % 50 == 0 || *s == steps).collect();
    let clean = TRUTH
        .predict(CurveForm::MultiPower, &lrs, warmup, &at)
        .unwrap();
    let mut rng = crate::rng::SplitMix64::new(seed);
    let val = at
        .iter()
        .zip(clean)
        .map(|(&s, l)| (s, l * (1.0 + noise * (2.0 * rng.next_f64() - 1.0))))
        .collect();
    CurveRun {
        name: name.into(),
        lrs,
        warmup,
        val,
        train: Vec::new(),
        step_tokens: 1000.0,
        unit: name.into(),
        shared: steps,
        probe: false,
    }
}

fn group(runs: Vec<CurveRun>) -> CurveGroup {
    CurveGroup {
        name: "g".into(),
        size: "g".into(),
        n: 1e6,
        lr: 1e-3,
        runs,
        schedule: Arc::new(|steps| cosine(1e-3, steps)),
        step_tokens: 1000.0,
    }
}

fn options(form: CurveForm) -> CurveOptions {
    CurveOptions {
        request: CurveRequest {
            form,
            burn_in: 0.1,
            train_loss: false,
            bootstrap: 0,
            confidence: 0.95,
            informed: false,
        },
        seed: 1,
    }
}

/// Fitted on three cosine horizons of an exact multi-power law, the law predicts the WSD
/// run it never saw, and the held-out runs, to well under 0.1 %.
#[test]
fn multi_power_recovers_its_law_and_predicts_another_schedule() {
    let mut runs = vec![
        run("c1", cosine(1e-3, 1000), 0.0, 1),
        run("c2", cosine(1e-3, 2000), 0.0, 2),
        run("c4", cosine(1e-3, 4000), 0.0, 3),
    ];
    let mut probe = run("w4", wsd(1e-3, 4000), 0.0, 4);
    probe.probe = true;
    runs.push(probe);
    let report = fit(&[group(runs)], &options(CurveForm::MultiPower));
    assert!(report.unusable.is_empty(), "{:?}", report.unusable);
    let law = &report.groups[0].params;
    assert!(law.rms_rel < 1e-4, "{law:?}");
    assert!((law.l0 - TRUTH.l0).abs() < 0.05, "{law:?}");
    let wsd = report.heldout.iter().find(|h| h.run == "w4").unwrap();
    assert!(wsd.worst < 1e-3, "{wsd:?}");
    assert_eq!(report.heldout.len(), 4);
    assert!(report.heldout_worst.unwrap() < 2e-3, "{:?}", report.heldout);
}

/// With noise, the annealing form fits too, and a single run is checked on its second half.
#[test]
fn annealing_fits_and_a_lone_run_is_checked_on_its_second_half() {
    let report = fit(
        &[group(vec![run("c4", cosine(1e-3, 4000), 0.002, 9)])],
        &options(CurveForm::Annealing),
    );
    assert_eq!(report.groups.len(), 1);
    let h = &report.heldout[0];
    assert_eq!(h.fitted_on, "its first half");
    assert!(h.tokens.iter().all(|&t| t > 2000.0 * 1000.0), "{h:?}");
    assert!(h.mean < 0.02, "{h:?}");
}

/// Runs the law cannot use are named with why; nothing panics.
#[test]
fn unusable_runs_are_named() {
    let mut short = run("short", cosine(1e-3, 120), 0.0, 1);
    short.val.truncate(1);
    let mut rising = run("rising", cosine(1e-3, 1000), 0.0, 2);
    rising.lrs[900] *= 2.0;
    let report = fit(
        &[group(vec![short, rising])],
        &options(CurveForm::MultiPower),
    );
    assert!(report.groups.is_empty());
    let reasons: Vec<&str> = report.unusable.iter().map(|u| u.reason.as_str()).collect();
    assert!(reasons[0].contains("validation point"), "{reasons:?}");
    assert!(reasons[1].contains("rises after the warmup"), "{reasons:?}");
}

/// The curve-informed law needs three sizes: with one it is absent, not a law of one size.
#[test]
fn the_curve_informed_law_needs_three_sizes() {
    let runs = vec![
        run("c1", cosine(1e-3, 1000), 0.0, 1),
        run("c2", cosine(1e-3, 2000), 0.0, 2),
    ];
    let mut asked = options(CurveForm::MultiPower);
    asked.request.informed = true;
    asked.request.bootstrap = 4;
    let report = fit(&[group(runs)], &asked);
    assert_eq!(report.groups.len(), 1);
    assert!(report.informed.is_none());
}
