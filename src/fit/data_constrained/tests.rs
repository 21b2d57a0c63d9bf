use super::*;

const TRUTH: DataConstrainedLaw = DataConstrainedLaw {
    e: 1.87,
    a: 521.0,
    b: 1488.0,
    alpha: 0.353,
    beta: 0.353,
    r_d_star: 15.4,
    r_n_star: 5.3,
};

/// Runs over three unique-token pools, 1 to 60 epochs, some past the saturation size.
fn runs(law: &DataConstrainedLaw) -> Vec<RepeatPoint> {
    let mut out = Vec::new();
    for u in [1e8, 4e8, 1.5e9] {
        for n in [1e7, 5e7, 2.5e8, 1e9, 4e9] {
            for epochs in [1.0, 4.0, 15.0, 60.0] {
                let d = u * epochs;
                out.push(RepeatPoint {
                    n,
                    d,
                    unique: Some(u),
                    loss: law.loss(n, d, Some(u)),
                });
            }
        }
    }
    out
}

#[test]
fn the_gradient_matches_finite_differences() {
    let pts = prepare(&runs(&TRUTH));
    // Saturated and unsaturated runs, residuals in and beyond the Huber knee.
    for theta in [
        [6.0, 7.5, 0.6, 0.35, 0.36, 2.7, 1.7],
        [5.0, 9.0, 0.5, 0.3, 0.45, 1.0, 3.0],
    ] {
        for delta in [1e-3, 1.0] {
            let (_, g) = objective(&theta, &pts, delta);
            for k in 0..7 {
                let h = 1e-6;
                let (mut up, mut down) = (theta, theta);
                up[k] += h;
                down[k] -= h;
                let numeric =
                    (objective(&up, &pts, delta).0 - objective(&down, &pts, delta).0) / (2.0 * h);
                let scale = numeric.abs().max(g[k].abs()).max(1e-8);
                assert!(
                    (numeric - g[k]).abs() / scale < 1e-5,
                    "θ{k}: analytic {} numeric {numeric} (δ {delta})",
                    g[k]
                );
            }
        }
    }
}

#[test]
fn fresh_data_is_the_chinchilla_law() {
    let (n, d) = (3e8, 6e9);
    assert_eq!(TRUTH.loss(n, d, None), TRUTH.base().loss(n, d));
    // A pool larger than D: no repetition, and N below N_opt(D) keeps its worth.
    assert!(1e8 < TRUTH.saturating_params(d));
    assert_eq!(TRUTH.loss(1e8, d, Some(2.0 * d)), TRUTH.base().loss(1e8, d));
    // Below the compute-optimal size for its unique tokens, a model loses little to four
    // epochs and much to sixty.
    let small = 3e7;
    assert!(small < TRUTH.saturating_params(1e9));
    let fresh = TRUTH.base().loss(small, 4e9);
    let four = TRUTH.loss(small, 4e9, Some(1e9));
    assert!(four > fresh && four / fresh - 1.0 < 0.01, "{four} {fresh}");
    let (n_eff, d_eff) = TRUTH.effective(small, 60e9, Some(1e9));
    assert!(d_eff < 0.3 * 60e9 && n_eff == small, "{d_eff:e}");
    // Past it, the excess parameters are worth less too.
    let (n_eff, _) = TRUTH.effective(n, 4e9, Some(1e9));
    assert!(
        n_eff < n && n_eff > TRUTH.saturating_params(1e9),
        "{n_eff:e}"
    );
}

#[test]
fn recovers_a_known_law() {
    let points = runs(&TRUTH);
    let fitted = fit(&points, 1e-3).unwrap();
    let got = fitted.law;
    assert!(fitted.objective < 1e-12, "{fitted:?}");
    assert!(fitted.objective < fitted.chinchilla_objective);
    for (g, t) in [
        (got.e, TRUTH.e),
        (got.alpha, TRUTH.alpha),
        (got.beta, TRUTH.beta),
        (got.r_d_star, TRUTH.r_d_star),
        (got.r_n_star, TRUTH.r_n_star),
    ] {
        assert!((g / t - 1.0).abs() < 1e-3, "{got:?}");
    }
    let ci = intervals(&points, 1e-3, &fitted, 20, 0.95, 1).unwrap();
    assert_eq!(ci.len(), 7);
    assert!(ci[5][0] <= TRUTH.r_d_star * 1.001 && TRUTH.r_d_star * 0.999 <= ci[5][1]);
    // No run repeating its data: nothing to identify R* from.
    let fresh: Vec<RepeatPoint> = points
        .iter()
        .map(|p| RepeatPoint { unique: None, ..*p })
        .collect();
    assert!(fit(&fresh, 1e-3).is_none());
    assert!(fit(&points[..7], 1e-3).is_none());
}

#[test]
fn a_cap_on_unique_tokens_buys_epochs_rather_than_parameters() {
    let c = 1e21;
    let (n0, d0, l0) = allocate(&TRUTH, c, None);
    let fresh = chinchilla::allocate(&TRUTH.base(), c);
    assert!(
        (n0 / fresh.n_opt - 1.0).abs() < 1e-4,
        "{n0:e} {:e}",
        fresh.n_opt
    );
    let (n1, d1, l1) = allocate(&TRUTH, c, Some(d0 / 20.0));
    // Parameters past the saturation size decay faster (R_N* < R_D*): the capped optimum is a
    // smaller model trained for more epochs, at a higher loss.
    assert!(
        n1 < n0 && d1 > d0 && l1 > l0,
        "{n0:e} {d0:e} {l0} → {n1:e} {d1:e} {l1}"
    );
}
