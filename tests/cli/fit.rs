//! `scalebook fit`: the published Epoch fit from a study of imported results, fits of a
//! mock-trained sweep, and bad imported tables.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use crate::support::{assert_no_crash, fresh_dir, scalebook, stderr, stdout, with_mock};

fn temp(name: &str) -> PathBuf {
    fresh_dir(&format!("fit-{name}"))
}

#[test]
fn imported_epoch_runs_reproduce_the_published_fit() {
    let Some(data) = scalebook::testing::reference_data() else {
        scalebook::testing::skip(
            "imported_epoch_runs_reproduce_the_published_fit",
            "no reference data (set SCALEBOOK_REFERENCE_DATA, or put shared/ beside the repository)",
        );
        return;
    };
    let csv = data.join("svg_extracted_data.csv");
    let dir = temp("epoch");
    let study = dir.join("epoch.yaml");
    fs::write(
        &study,
        format!(
            "version: 1\nname: epoch\nresults:\n  path: {}\n  columns: {{ params: \"Model Size\", flops: \"Training FLOP\", loss: loss }}\n  drop_highest_loss: 5\nfits:\n  - {{ law: chinchilla, bootstrap: 100 }}\n",
            csv.display()
        ),
    )
    .unwrap();
    let out = scalebook(&[
        "fit",
        study.to_str().unwrap(),
        "--store",
        dir.join("store").to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fits: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let c = &fits["chinchilla"];
    let get = |k: &str| c[k].as_f64().unwrap();
    assert!((get("objective") - 1.01827402e-3).abs() < 3e-11, "{c}");
    assert!((get("E") - 1.8172).abs() < 1e-4, "{c}");
    assert!((get("alpha") - 0.34731).abs() < 5e-5, "{c}");
    assert!((get("beta") - 0.36717).abs() < 5e-5, "{c}");
    assert!((get("A") / 477.8 - 1.0).abs() < 1e-3 && (get("B") / 2143.4 - 1.0).abs() < 1e-3);
    assert_eq!(c["starts"], 4500);
    assert_eq!(fits["points"], 240);
    let ci = &c["ci"]["alpha"];
    assert!(ci[0].as_f64().unwrap() < get("alpha") && get("alpha") < ci[1].as_f64().unwrap());
    // Written to the store too.
    let written: Value = serde_json::from_str(
        &fs::read_to_string(dir.join("store/studies/epoch/fits.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(written, fits);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_mock_isoflop_sweep_fits_every_requested_law() {
    let dir = temp("iso");
    let store = dir.join("store");
    let study = "tests/fixtures/valid/isoflop.yaml";
    let out = scalebook(&[
        "run",
        study,
        "--store",
        store.to_str().unwrap(),
        "--executor",
        "mock",
        "--no-report",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = scalebook(&[
        "fit",
        study,
        "--executor",
        "mock",
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fits: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(fits["points"], 18);
    assert!(fits["chinchilla"]["alpha"].as_f64().unwrap() > 0.0);
    // The allocation covers the final budget and the three IsoFLOP budgets.
    assert_eq!(fits["allocation"].as_array().unwrap().len(), 4);
    assert!(fits["holdout"]["rel_error_max"].as_f64().unwrap() >= 0.0);
    assert_eq!(fits["holdout"]["kind"], "budgets");
    assert!(
        fits["frontier"]["points"].as_array().unwrap().len() >= 2,
        "{}",
        fits["frontier"]
    );
    let text = stdout(&out);
    assert!(
        !text.contains("NaN") && !text.contains("null,\n  \"chinchilla\""),
        "{text}"
    );
    let table = scalebook(&[
        "fit",
        study,
        "--executor",
        "mock",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert!(
        stdout(&table).contains("chinchilla  L = E + A/N^α + B/D^β"),
        "{}",
        stdout(&table)
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_imported_tables_exit_2_naming_row_and_column() {
    let dir = temp("bad");
    let write_study = |csv: &str, extra: &str| {
        fs::write(dir.join("t.csv"), csv).unwrap();
        let study = dir.join("s.yaml");
        fs::write(
            &study,
            format!("version: 1\nname: s\nresults:\n  path: t.csv\n  columns: {{ params: N, tokens: D, loss: L }}\n{extra}"),
        )
        .unwrap();
        study
    };
    let fit = |study: &PathBuf| {
        scalebook(&[
            "fit",
            study.to_str().unwrap(),
            "--store",
            dir.join("store").to_str().unwrap(),
        ])
    };
    let study = write_study("N,D,L\n1e6,1e9,3.0\n2e6,-1e9,2.9\n", "");
    let out = fit(&study);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("t.csv: row 2, column `D`: -1000000000 is not a positive finite number"),
        "{}",
        stderr(&out)
    );
    let study = write_study("N,Tokens,L\n1e6,1e9,3.0\n", "");
    let out = fit(&study);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("results.columns.tokens: no column `D`; the table has N, Tokens, L"),
        "{}",
        stderr(&out)
    );
    let study = write_study("N,D,L\n1e6,1e9,3.0\n2e6,1e9,\n", "");
    let out = fit(&study);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("row 2, column `L`: empty or not a number"),
        "{}",
        stderr(&out)
    );
    // Too few points: a warning and no law, never a NaN or a panic.
    let study = write_study("N,D,L\n1e6,1e9,3.0\n2e6,2e9,2.9\n", "");
    let out = fit(&study);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("chinchilla: 2 points cannot determine 5 parameters"),
        "{}",
        stderr(&out)
    );
    assert_no_crash(&stderr(&out), &study);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn constrained_optima_follow_the_cost_law_and_the_cap() {
    let dir = temp("constrained");
    let store = dir.join("store");
    let study = "reports/quickstart.yaml";
    let out = scalebook(&[
        "run",
        study,
        "--store",
        store.to_str().unwrap(),
        "--executor",
        "mock",
        "--no-report",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        store.join("studies/quickstart/fits.json").is_file(),
        "run fits the study"
    );
    let out = scalebook(&[
        "fit",
        study,
        "--executor",
        "mock",
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
        "--wall-budget",
        "600",
        "--max-params",
        "1e6",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fits: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let constrained = fits["constrained"].as_array().unwrap();
    let wall = constrained
        .iter()
        .find(|c| c["budget_kind"] == "wall_seconds")
        .unwrap();
    let cost = &fits["cost"]["wall_seconds"];
    // The optimum spends the whole budget, as the cost law predicts.
    assert!(
        (wall["cost"].as_f64().unwrap() / 600.0 - 1.0).abs() < 1e-6,
        "{wall}"
    );
    assert!(wall["n"].as_f64().unwrap() <= 1e6 * (1.0 + 1e-9));
    assert!(cost["q"].as_f64().unwrap() > 0.5, "{cost}");
    let bad = scalebook(&[
        "fit",
        study,
        "--executor",
        "mock",
        "--store",
        store.to_str().unwrap(),
        "--wall-budget",
        "0",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("--wall-budget must be a positive number"),
        "{}",
        stderr(&bad)
    );
    fs::remove_dir_all(dir).unwrap();
}

/// The end-to-end mock pipeline (run → store → collect → fit) recovers the law it was given:
/// exactly without noise, and inside its bootstrap intervals with 0.5 % noise.
#[test]
fn the_mock_pipeline_recovers_the_mocks_law() {
    let truth = [
        ("E", 1.5),
        ("A", 300.0),
        ("B", 500.0),
        ("alpha", 0.3),
        ("beta", 0.35),
    ];
    for (study, noise) in [
        ("tests/fixtures/valid/report_mock.yaml", "0"),
        ("tests/fixtures/valid/isoflop.yaml", "0.005"),
    ] {
        let dir = temp(&format!("recover-{noise}"));
        let store = dir.join("store");
        let law = format!("1.5,300,500,0.3,0.35,{noise}");
        let producer = ["--executor", "mock", "--mock-law", law.as_str()];
        let mut args = vec![
            "run",
            study,
            "--no-report",
            "--store",
            store.to_str().unwrap(),
        ];
        args.extend(producer);
        let out = scalebook(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let mut args = vec![
            "fit",
            study,
            "--format",
            "json",
            "--store",
            store.to_str().unwrap(),
        ];
        args.extend(producer);
        let out = scalebook(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let fits: Value = serde_json::from_str(&stdout(&out)).unwrap();
        let c = &fits["chinchilla"];
        for (name, want) in truth {
            let got = c[name].as_f64().unwrap();
            if noise == "0" {
                assert!(
                    (got / want - 1.0).abs() < 1e-3,
                    "{study}: {name} {got} vs {want}"
                );
            } else {
                let ci = &c["ci"][name];
                let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
                assert!(
                    lo <= want && want <= hi,
                    "{study}: {name} {want} outside [{lo}, {hi}]"
                );
            }
        }
        if noise != "0" {
            for (name, want) in [("alpha", 0.3), ("beta", 0.35)] {
                let got = c[name].as_f64().unwrap();
                assert!((got - want).abs() < 0.02, "{study}: {name} {got} vs {want}");
            }
        }
        fs::remove_dir_all(dir).unwrap();
    }
}

/// The fitting code's output is pinned: `fits.json` (less its `inputs` key) of the golden
/// mock study has the digest `FIT_GOLDEN` holds for this architecture, so a change that moves
/// a fitted number without raising `FIT_VERSION` (and so silently reusing stale fits) fails.
#[test]
fn the_fits_match_their_golden_digest() {
    use scalebook::pipeline::fitting::{FIT_GOLDEN, FIT_VERSION};
    use sha2::{Digest, Sha256};
    let dir = temp("fit-golden");
    let store = dir.join("store");
    let study = "tests/fixtures/valid/report_mock.yaml";
    let producer = [
        "--executor",
        "mock",
        "--mock-law",
        "1.5,300,500,0.3,0.35,0.01",
    ];
    let mut args = vec![
        "run",
        study,
        "--no-report",
        "--store",
        store.to_str().unwrap(),
    ];
    args.extend(producer);
    let out = scalebook(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut fits: Value =
        serde_json::from_slice(&fs::read(store.join("studies/report-mock/fits.json")).unwrap())
            .unwrap();
    fits.as_object_mut().unwrap().remove("inputs");
    let bytes = serde_json::to_vec(&fits).unwrap();
    let digest: String = Sha256::digest(&bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match FIT_GOLDEN
        .iter()
        .find(|(arch, _)| *arch == std::env::consts::ARCH)
    {
        Some((_, want)) => assert_eq!(
            &digest, want,
            "the fits moved: raise FIT_VERSION ({FIT_VERSION}, src/pipeline/fitting.rs) and set \
             FIT_GOLDEN to {digest} (or, if the mock executor changed, only the digest)"
        ),
        None => scalebook::testing::say(&format!(
            "no golden fit digest for {}: it is {digest} (add it to FIT_GOLDEN)",
            std::env::consts::ARCH
        )),
    }
    fs::remove_dir_all(dir).unwrap();
}

/// `law: curve` end to end on a mock grid: each size's curve law is fitted on its three
/// horizons, every run is predicted by the law fitted without it, the curve-informed law is
/// set beside the endpoint law, and the chapter shows the table and chart.
#[test]
fn curve_law_fits_checks_and_reports_a_mock_grid() {
    let dir = temp("curve");
    let study = dir.join("curve.yaml");
    fs::write(
        &study,
        "version: 1\nname: curve\nseed: 5\ndata: { vocab: 64, order: 2 }\n\
         model:\n  context: 32\n  sizes:\n    - { layers: 1, d_model: 16, heads: 2 }\n    \
         - { layers: 2, d_model: 32, heads: 2 }\n    - { layers: 2, d_model: 48, heads: 2 }\n\
         tokens: [4e4, 8e4, 1.6e5]\n\
         train: { batch: 8, lr: 1e-3, schedule: cosine, eval_every: 20, eval_tokens: 1024 }\n\
         fits:\n  - { law: chinchilla, bootstrap: 20, grid: coarse }\n  \
         - { law: curve, bootstrap: 20 }\n",
    )
    .unwrap();
    let store = dir.join("store");
    let book = dir.join("book");
    let law = "1.69,406.4,410.7,0.34,0.28,0.002";
    let out = with_mock(
        &[
            "run",
            study.to_str().unwrap(),
            "--book",
            book.to_str().unwrap(),
        ],
        law,
        &store,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fits: Value =
        serde_json::from_str(&fs::read_to_string(store.join("studies/curve/fits.json")).unwrap())
            .unwrap();
    let c = &fits["curve"];
    assert_eq!(c["form"], "multi_power");
    assert_eq!(c["groups"].as_array().unwrap().len(), 3, "{c}");
    assert_eq!(c["heldout"].as_array().unwrap().len(), 9, "{c}");
    assert!(c["unusable"].as_array().unwrap().is_empty(), "{c}");
    for g in c["groups"].as_array().unwrap() {
        assert_eq!(g["runs"].as_array().unwrap().len(), 3);
        assert!(g["L0"].as_f64().unwrap() > 0.0 && g["alpha"].as_f64().unwrap() > 0.0);
    }
    for h in c["heldout"].as_array().unwrap() {
        let (mean, worst) = (h["mean"].as_f64().unwrap(), h["worst"].as_f64().unwrap());
        assert!(mean.is_finite() && mean <= worst, "{h}");
        assert!(
            h["fitted_on"]
                .as_str()
                .unwrap()
                .contains("the other 2 runs")
        );
    }
    let informed = &c["informed"];
    assert_eq!(informed["sizes"], 3);
    assert_eq!(informed["points"].as_array().unwrap().len(), 24);
    assert_eq!(informed["against_endpoint"].as_array().unwrap().len(), 5);
    assert_eq!(
        informed["bootstrap_resamples"].as_u64().unwrap()
            + informed["bootstrap_failures"].as_u64().unwrap(),
        20
    );
    let chapter = fs::read_to_string(book.join("src/curve/index.md")).unwrap();
    assert!(chapter.contains("**Held out.**"), "{chapter}");
    assert!(chapter.contains("**Curve-informed L(N, D).**"), "{chapter}");
    assert!(book.join("src/curve/figures/curve.svg").is_file());
    // The same study, seed and results give the same fits.
    let again = with_mock(
        &["fit", study.to_str().unwrap(), "--format", "json"],
        law,
        &store,
    );
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let refit: Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert!(refit["curve"] == fits["curve"], "the refit differs");
}

/// The mock reports curves from a known multi-power law under each run's planned schedule;
/// `law: curve` recovers the law per size, predicts a WSD run it never saw within 0.1 %, and
/// `fit --predict` prints the prediction for a size, token count and schedule.
#[test]
fn the_curve_law_recovers_a_mock_multi_power_law_and_predicts_other_schedules() {
    let dir = temp("curve-mock");
    let study = dir.join("mp.yaml");
    let text = |name: &str, schedule: &str, tokens: &str| {
        format!(
            "version: 1\nname: {name}\nseed: 2\ndata: {{ vocab: 64, order: 2 }}\n\
             model:\n  context: 32\n  sizes:\n    - {{ layers: 1, d_model: 16, heads: 2 }}\n    \
             - {{ layers: 2, d_model: 32, heads: 2 }}\n\
             tokens: [{tokens}]\n\
             train: {{ batch: 8, lr: 1e-3, schedule: {schedule}, eval_every: 20, eval_tokens: 1024 }}\n\
             fits:\n  - {{ law: chinchilla, bootstrap: 0, grid: coarse }}\n  \
             - {{ law: curve, bootstrap: 0, curve_informed: false }}\n"
        )
    };
    fs::write(&study, text("mp", "cosine", "4e4, 8e4, 1.6e5")).unwrap();
    let wsd = dir.join("mp-wsd.yaml");
    fs::write(&wsd, text("mp-wsd", "wsd", "1.6e5")).unwrap();
    let (e, a, alpha, b, beta) = (1.69, 406.4, 0.34, 410.7, 0.28);
    let law = format!("{e},{a},{b},{alpha},{beta},0;multi_power=300,2,0.6,0.5");
    let store = dir.join("store");
    let mock = |args: &[&str]| with_mock(args, &law, &store);
    for s in [&study, &wsd] {
        let out = mock(&["run", s.to_str().unwrap(), "--no-report"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let fits: Value =
        serde_json::from_str(&fs::read_to_string(store.join("studies/mp/fits.json")).unwrap())
            .unwrap();
    let groups = fits["curve"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    for g in groups {
        let n = g["n"].as_f64().unwrap();
        let floor = e + a / n.powf(alpha);
        let l0 = g["L0"].as_f64().unwrap();
        assert!(
            (l0 / floor - 1.0).abs() < 0.01,
            "L0 {l0} against {floor}: {g}"
        );
        assert!((g["alpha"].as_f64().unwrap() - beta).abs() < 0.02, "{g}");
        assert!(g["rms_rel"].as_f64().unwrap() < 1e-3, "{g}");
    }
    assert!(
        fits["curve"]["heldout_worst"].as_f64().unwrap() < 0.01,
        "{}",
        fits["curve"]
    );
    // The WSD run of the larger size, never fitted, from the cosine runs' law.
    let out = mock(&[
        "fit",
        study.to_str().unwrap(),
        "--predict",
        "size=l2-d32,tokens=1.6e5,schedule=wsd",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let predicted: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let p = &predicted["predictions"][0];
    assert_eq!(p["schedule"], "wsd");
    assert_eq!(p["size"], "l2-d32");
    let runs = fs::read_dir(store.join("runs")).unwrap();
    let wsd_run = runs
        .map(|e| e.unwrap().path())
        .find(|p| {
            fs::read_to_string(p.join("spec.json"))
                .is_ok_and(|s| s.contains("\"wsd\"") && s.contains("\"d_model\": 32"))
        })
        .expect("the WSD run of l2-d32");
    let result: Value =
        serde_json::from_str(&fs::read_to_string(wsd_run.join("result.json")).unwrap()).unwrap();
    let (got, want) = (
        p["loss"].as_f64().unwrap(),
        result["val_loss"].as_f64().unwrap(),
    );
    assert!(
        (got / want - 1.0).abs() < 1e-3,
        "predicted {got}, measured {want}"
    );
    assert!(p["curve"].as_array().unwrap().len() >= 10);
    // A branch of a shared trunk: WSD with the trunk's (longer) warmup.
    let out = mock(&[
        "fit",
        study.to_str().unwrap(),
        "--predict",
        "size=l2-d32,tokens=1.6e5,schedule=wsd,warmup_steps=60",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = stdout(&out).lines().nth(1).unwrap_or_default().to_string();
    let branch: f64 = line.rsplit('\t').next().unwrap().parse().unwrap();
    assert!(branch.is_finite() && (branch - got).abs() > 1e-6, "{line}");
    // Bad queries exit 2 naming the flag.
    for (query, says) in [
        ("size=l9-d9,tokens=1e5", "no curve law fitted"),
        ("size=l2-d32,tokens=-1", "not a positive number"),
        (
            "size=l2-d32,tokens=1e5,schedule=linear",
            "schedule `linear`",
        ),
        ("tokens=1e5", "give at least size"),
        (
            "size=l2-d32,tokens=1.6e5,warmup_steps=5000",
            "not shorter than the run",
        ),
        (
            "size=l2-d32,tokens=1.6e5,warmup_steps=2.5",
            "not a whole number",
        ),
        ("size=l2-d32,tokens=1e15", "at most 10000000 steps"),
    ] {
        let out = mock(&["fit", study.to_str().unwrap(), "--predict", query]);
        assert_eq!(out.status.code(), Some(2), "{query}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--predict"),
            "{query}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(says), "{query}: {}", stderr(&out));
    }
}
