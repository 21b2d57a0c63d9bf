//! `final.law: auto`, and `final:` limits beyond the FLOP budget — a lifetime of inference
//! tokens, a parameter cap, a memory limit through the memory law, a wall-time limit through
//! the time law — place the final run, and say so in the chapter.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use crate::support::{
    assert_no_crash, fixture, fresh_dir, mock_study, scalebook, stderr, with_mock,
};

const LAW: &str = "1.5,300,500,0.3,0.35,0.005";

fn study(dir: &std::path::Path, name: &str, final_run: &str) -> std::path::PathBuf {
    mock_study(dir, name, &[("final: { budget: 2e11 }", final_run)])
}

/// `run` `path` (grid and final run) with the mock into its own store and book beside it.
fn run(path: &std::path::Path) -> (PathBuf, PathBuf) {
    let store = path.with_extension("store");
    let book = path.with_extension("book");
    let out = with_mock(
        &[
            "run",
            path.to_str().unwrap(),
            "--book",
            book.to_str().unwrap(),
        ],
        LAW,
        &store,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    (store, book)
}

/// The final run's (N, D) after [`run`].
fn final_run(path: &std::path::Path) -> (f64, f64) {
    let (store, _) = run(path);
    let entry = fs::read_dir(store.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().contains("-final-"))
        .expect("a final run");
    let r: Value =
        serde_json::from_str(&fs::read_to_string(entry.join("result.json")).unwrap()).unwrap();
    (
        r["params_total"].as_f64().unwrap(),
        r["tokens"].as_f64().unwrap(),
    )
}

#[test]
fn inference_tokens_and_a_parameter_cap_move_the_final_run() {
    let dir = fresh_dir("final-limits");
    let plain = final_run(&study(&dir, "plain", "final: { budget: 2e11 }"));
    // A lifetime of inference: a smaller model on more tokens per parameter.
    let path = study(
        &dir,
        "inference",
        "final: { budget: 2e11, inference_tokens: 2e5 }",
    );
    let served = final_run(&path);
    assert!(served.0 < 0.8 * plain.0, "{served:?} vs {plain:?}");
    assert!(
        served.1 / served.0 > plain.1 / plain.0,
        "{served:?} vs {plain:?}"
    );
    // Training and inference spend the budget between them.
    assert!((6.0 * served.0 * served.1 + 2.0 * served.0 * 2e5) / 2e11 < 1.1);
    let book = dir.join("book");
    let out = with_mock(
        &[
            "report",
            path.to_str().unwrap(),
            "--book",
            book.to_str().unwrap(),
        ],
        LAW,
        &path.with_extension("store"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let chapter = fs::read_to_string(book.join("src/report-mock/index.md")).unwrap();
    assert!(chapter.contains("Under `final:`'s limits"), "{chapter}");
    assert!(chapter.contains("For its training share, C ="), "{chapter}");
    // The allocation chart's second panel: the Pareto front under the limits.
    assert!(
        chapter.contains("Loss against total cost (training + inference)"),
        "{chapter}"
    );
    // A parameter cap below the optimum holds N at the cap (the nearest buildable shape).
    let cap = (plain.0 / 3.0).round();
    let capped = final_run(&study(
        &dir,
        "capped",
        &format!("final: {{ budget: 2e11, max_params: {cap} }}"),
    ));
    assert!(
        capped.0 < 0.5 * plain.0 && capped.1 > 1.5 * plain.1,
        "{capped:?}"
    );
    // A generous memory limit through the mock's memory law binds nothing.
    let roomy = final_run(&study(
        &dir,
        "roomy",
        "final: { budget: 2e11, max_memory_bytes: 1e12 }",
    ));
    assert!(
        (roomy.0 / plain.0 - 1.0).abs() < 0.2,
        "{roomy:?} vs {plain:?}"
    );
    fs::remove_dir_all(dir).unwrap();
}

/// A wall-time limit goes through the fitted time law: one the budget's optimum meets leaves it
/// in place and the chapter gives its predicted time and the wall-time front; one no model on
/// the budget can meet skips the final run, saying why.
#[test]
fn a_wall_time_limit_places_or_skips_the_final_run() {
    let dir = fresh_dir("final-wall");
    let plain = final_run(&study(&dir, "plain", "final: { budget: 2e11 }"));
    // The mock trains at 20 GFLOP/s: the budget's optimum takes about 10 s.
    let path = study(
        &dir,
        "roomy",
        "final: { budget: 2e11, max_wall_seconds: 1e4 }",
    );
    let roomy = final_run(&path);
    assert_eq!(roomy, plain);
    let (_, book) = run(&path);
    let chapter = fs::read_to_string(book.join("src/report-mock/index.md")).unwrap();
    let line = chapter
        .lines()
        .find(|l| l.contains("Predicted training time on this machine: "))
        .unwrap_or_else(|| panic!("{chapter}"));
    assert!(!line.contains("holds N at its edge"), "{line}");
    assert!(
        chapter.contains("Loss against training wall time (this machine)"),
        "{chapter}"
    );
    // A second: no model spends 2e11 FLOPs that fast on the mock's 20 GFLOP/s. The grid
    // stays, the final run is skipped, and the study's gate on it fails (exit 4).
    let tight = study(
        &dir,
        "tight",
        "final: { budget: 2e11, max_wall_seconds: 1 }",
    );
    let (store, book) = (tight.with_extension("store"), tight.with_extension("book"));
    let out = with_mock(
        &[
            "run",
            tight.to_str().unwrap(),
            "--book",
            book.to_str().unwrap(),
        ],
        LAW,
        &store,
    );
    let err = stderr(&out);
    assert_no_crash(&err, &tight);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("wall-time limit admits no model"), "{err}");
    let finals = fs::read_dir(store.join("runs"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_str().unwrap().contains("-final-")
        })
        .count();
    assert_eq!(finals, 0);
    let chapter = fs::read_to_string(book.join("src/report-mock/index.md")).unwrap();
    assert!(chapter.contains("final_skipped"), "{chapter}");
    assert!(
        chapter.contains("wall-time limit admits no model"),
        "{chapter}"
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_limits_are_refused_naming_the_field() {
    let dir = fresh_dir("final-limits-bad");
    let fits = "fits:\n  - { law: chinchilla }\n";
    let cases = [
        (
            fits,
            "final: { budget: 2e11, inference_tokens: -1 }",
            "final.inference_tokens",
        ),
        (
            fits,
            "final: { budget: 2e11, max_params: 0 }",
            "final.max_params",
        ),
        (
            fits,
            "final: { budget: 2e11, max_memory_bytes: 8e9 }",
            "- { law: cost }",
        ),
        (
            fits,
            "final: { budget: 2e11, max_wall_seconds: 60 }",
            "final.max_wall_seconds: needs the wall-time law",
        ),
        (
            "fits:\n  - { law: chinchilla }\n  - { law: cost }\n",
            "final: { budget: 2e11, max_wall_seconds: 0 }",
            "final.max_wall_seconds",
        ),
    ];
    for (fits, final_run, words) in cases {
        let text = fs::read_to_string(fixture("valid/report_mock.yaml")).unwrap();
        let start = text.find("fits:").unwrap();
        let end = text.find("holdout:").unwrap();
        let text = format!("{}{fits}{}", &text[..start], &text[end..])
            .replace("final: { budget: 2e11 }", final_run);
        let path = dir.join("s.yaml");
        fs::write(&path, text).unwrap();
        let out = scalebook(&["validate", path.to_str().unwrap()]);
        let err = stderr(&out);
        assert_no_crash(&err, &path);
        assert_eq!(out.status.code(), Some(2), "{final_run}: {err}");
        assert!(err.contains(words), "{final_run}: {err}");
    }
    fs::remove_dir_all(dir).unwrap();
}

/// `final.law: auto` places the final run with the law the audit ranks first among those the
/// data support, says so in the chapter, and falls back to the hold-out without an audit.
#[test]
fn final_law_auto_follows_the_rollout_audit_then_the_hold_out() {
    let dir = fresh_dir("final-auto");
    for (name, holdout, words) in [
        (
            "rollout",
            "holdout: { largest: 1, rollout: sizes }",
            "mean rollout error",
        ),
        ("heldout", "holdout: { largest: 1 }", "worst hold-out error"),
    ] {
        let path = mock_study(
            &dir,
            name,
            &[
                (
                    "final: { budget: 2e11 }",
                    "final: { budget: 2e11, law: auto }",
                ),
                ("holdout: { largest: 1 }", holdout),
                (
                    "  - { law: cost }",
                    "  - { law: cost }\n  - { law: overtrain, bootstrap: 0 }",
                ),
            ],
        );
        let (store, book) = run(&path);
        let fits: Value = serde_json::from_str(
            &fs::read_to_string(store.join("studies/report-mock/fits.json")).unwrap(),
        )
        .unwrap();
        let chapter = fs::read_to_string(book.join("src/report-mock/index.md")).unwrap();
        let line = chapter
            .lines()
            .find(|l| l.starts_with("`final.law: auto` placed the final run with the"))
            .unwrap_or_else(|| panic!("{chapter}"));
        assert!(line.contains(words), "{line}");
        if name == "rollout" {
            // The audit's best-ranked law (the free-E law is sound on the mock's points).
            let best = fits["rollout"]["laws"][0]["form"].as_str().unwrap();
            let named = match best {
                "free_e" => "`chinchilla`".to_string(),
                "overtrain" => "`overtrain`".to_string(),
                f => format!("`chinchilla ({f})`"),
            };
            assert!(line.contains(&named), "{best}: {line}");
        } else {
            let free = fits["holdout"]["rel_error_max"].as_f64().unwrap();
            let over = fits["overtrain"]["holdout"]["rel_error_max"]
                .as_f64()
                .unwrap();
            let named = if over < free {
                "`overtrain`"
            } else {
                "`chinchilla`"
            };
            assert!(line.contains(named), "{free} {over}: {line}");
        }
    }
    // `auto` is no law to fit, and needs the Chinchilla law among the fits.
    for (body, words) in [
        ("fits:\n  - { law: auto }\n", "`auto` names no law to fit"),
        (
            "fits:\n  - { law: power, x: params }\nfinal: { budget: 1e20, law: auto }\n",
            "add `- { law: chinchilla }`",
        ),
    ] {
        fs::write(dir.join("runs.csv"), "n,d,loss\n1e6,1e8,3.1\n").unwrap();
        let s = dir.join("s.yaml");
        fs::write(
            &s,
            format!(
                "version: 1\nname: s\nresults:\n  path: runs.csv\n  columns: {{ params: n, tokens: d, loss: loss }}\n{body}"
            ),
        )
        .unwrap();
        let out = scalebook(&["validate", s.to_str().unwrap()]);
        let err = stderr(&out);
        assert_no_crash(&err, &s);
        assert_eq!(out.status.code(), Some(2), "{body}: {err}");
        assert!(err.contains(words), "{body}: {err}");
    }
    fs::remove_dir_all(dir).unwrap();
}
