//! A pinned floor (`E:` of a chinchilla fit) and the variable-projection estimate
//! (`estimator: vpnls`): end to end on a mock grid whose law is known, the final run planned
//! from the pinned law, and bad values refused naming the field.

use std::fs;

use serde_json::Value;

use crate::support::{assert_no_crash, fresh_dir, mock_study, scalebook, stderr, with_mock};

/// `tests/fixtures/valid/report_mock.yaml` with its chinchilla fit's options replaced.
fn study(dir: &std::path::Path, chinchilla: &str) -> std::path::PathBuf {
    mock_study(
        dir,
        "study",
        &[(
            "  - { law: chinchilla, bootstrap: 50, grid: coarse }",
            &format!("  - {{ law: chinchilla, bootstrap: 50, grid: coarse, {chinchilla} }}"),
        )],
    )
}

#[test]
fn a_pinned_floor_is_fitted_beside_the_free_one_and_places_the_final_run() {
    let dir = fresh_dir("pinned");
    let store = dir.join("store");
    let book = dir.join("book");
    let path = study(&dir, "E: 1.5, estimator: vpnls");
    // The final run is placed and predicted by the pinned law.
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("  - \"final.law == 'chinchilla (pinned_e)'\"\n");
    fs::write(&path, text).unwrap();
    let law = "1.5,300,500,0.3,0.35,0.005";
    let out = with_mock(
        &[
            "run",
            path.to_str().unwrap(),
            "--book",
            book.to_str().unwrap(),
        ],
        law,
        &store,
    );
    let err = stderr(&out);
    assert_no_crash(&err, &path);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("check passed: final.law == 'chinchilla (pinned_e)'"),
        "{err}"
    );
    let fits: Value = serde_json::from_str(
        &fs::read_to_string(store.join("studies/report-mock/fits.json")).unwrap(),
    )
    .unwrap();
    let c = &fits["chinchilla"];
    let p = &c["pinned"];
    assert_eq!(p["source"], "value");
    assert_eq!(p["E"].as_f64(), Some(1.5));
    // The floor is the truth: the exponents come back inside their intervals, near the truth.
    for (name, want) in [("alpha", 0.3), ("beta", 0.35)] {
        let got = p[name].as_f64().unwrap();
        let ci = &p["ci"][name];
        let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
        assert!(
            lo <= want && want <= hi,
            "{name} {want} outside [{lo}, {hi}]: {p}"
        );
        assert!((got - want).abs() < 0.02, "{name} {got}: {p}");
    }
    assert_eq!(p["bootstrap_laws"].as_array().unwrap().len(), 50);
    // Its own hold-out (the largest size), with intervals on the predictions.
    let h = &p["holdout"];
    assert_eq!(h["kind"], "largest");
    assert!(h["rel_error_max"].as_f64().unwrap() < 0.02, "{h}");
    assert!(h["points"][0]["predicted_ci"].is_array(), "{h}");
    // The allocation of the final budget, with intervals.
    let a = &p["allocation"][0];
    assert_eq!(a["compute"].as_f64(), Some(2e11));
    assert!(a["ci"][0][0].as_f64().unwrap() <= a["n_opt"].as_f64().unwrap());
    // Variable projection: on its own objective it is at least as good as the Huber fit.
    let v = &c["vpnls"]["free"];
    assert!(v["sse"].as_f64().unwrap() <= v["huber_fit_sse"].as_f64().unwrap() * (1.0 + 1e-9));
    assert!((v["alpha"].as_f64().unwrap() - 0.3).abs() < 0.05, "{v}");
    assert_eq!(c["vpnls"]["pinned"]["E"].as_f64(), Some(1.5));
    // The free law stays where it was, and the chapter says which law placed the final run.
    assert!(c["E"].as_f64().unwrap() != 1.5);
    let chapter = fs::read_to_string(book.join("src/report-mock/index.md")).unwrap();
    assert!(
        chapter.contains("**E pinned** at 1.500 (the study's value)"),
        "{chapter}"
    );
    assert!(
        chapter.contains("The final run follows this law."),
        "{chapter}"
    );
    assert!(chapter.contains("**Variable projection**"), "{chapter}");
    let n_opt = a["n_opt"].as_f64().unwrap();
    let free_n = fits["allocation"][0]["n_opt"].as_f64().unwrap();
    assert!(n_opt != free_n);
    // The pinned law's N_opt is what `plan` shows for the final run.
    let out = with_mock(&["plan", path.to_str().unwrap()], law, &store);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = crate::support::stdout(&out);
    assert!(plan.contains("-final"), "{plan}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_floor_above_the_losses_is_flagged_and_bad_floors_are_refused() {
    let dir = fresh_dir("pinned-bad");
    let store = dir.join("store");
    // Above every mock loss: the law cannot reach the runs, and says so.
    let path = study(&dir, "E: 1e3");
    let law = "1.5,300,500,0.3,0.35,0";
    let out = with_mock(&["run", path.to_str().unwrap(), "--no-report"], law, &store);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = with_mock(
        &["fit", path.to_str().unwrap(), "--format", "json"],
        law,
        &store,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fits: Value = serde_json::from_str(&crate::support::stdout(&out)).unwrap();
    assert!(
        fits["questioning_codes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "floor_above_loss"),
        "{}",
        fits["warning_codes"]
    );
    assert_eq!(
        fits["chinchilla"]["pinned"]["below_floor"]
            .as_array()
            .unwrap()
            .len(),
        fits["points"].as_u64().unwrap() as usize
    );
    // Refused before anything runs, naming the field.
    fs::write(dir.join("runs.csv"), "n,d,loss\n1e6,1e8,3.1\n").unwrap();
    let imported = "results:\n  path: runs.csv\n  columns: { params: n, tokens: d, loss: loss }\n";
    let cases = [
        (
            format!("{imported}fits:\n  - {{ law: chinchilla, E: entropy }}\n"),
            "fits[0].E",
            "entropy rate is known",
        ),
        (
            format!("{imported}fits:\n  - {{ law: chinchilla, E: -1 }}\n"),
            "fits[0].E",
            "≥ 0",
        ),
        (
            format!("{imported}fits:\n  - {{ law: chinchilla, E: banana }}\n"),
            "E",
            "`entropy` or a number",
        ),
        (
            format!("{imported}fits:\n  - {{ law: power, x: params, E: 1.7 }}\n"),
            "fits[0].E",
            "only to law chinchilla",
        ),
        (
            format!("{imported}fits:\n  - {{ law: data_constrained, estimator: vpnls }}\n"),
            "fits[0].estimator",
            "only to law chinchilla and overtrain",
        ),
    ];
    for (body, field, words) in cases {
        let s = dir.join("s.yaml");
        fs::write(&s, format!("version: 1\nname: s\n{body}")).unwrap();
        let out = scalebook(&["validate", s.to_str().unwrap()]);
        let err = stderr(&out);
        assert_no_crash(&err, &s);
        assert_eq!(out.status.code(), Some(2), "{body}: {err}");
        assert!(err.contains(field) && err.contains(words), "{body}: {err}");
    }
    fs::remove_dir_all(dir).unwrap();
}
