//! `metrics:`: what a trained run measures beside its loss — recorded in its result and
//! curve, the Parquet tables and `status`, drawn in the recall chart, read by `law: metric`,
//! part of the runs' identity only when asked for; every bad list is one line naming it.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{
    assert_no_crash, fresh_dir, mock_study, plan_keys, scalebook, stderr, stdout, with_mock,
};

/// A tiny facts-language study with `metrics` (the YAML list) and report `sections`.
fn facts_study(dir: &Path, metrics: &str, sections: &str) -> PathBuf {
    let path = dir.join("facts.yaml");
    fs::write(
        &path,
        format!(
            "version: 1\nname: facts\nseed: 4\ndata: {{ vocab: 16, facts: 40, zipf: 1.1 }}\n\
             model:\n  context: 16\n  sizes:\n    - {{ layers: 1, d_model: 16, heads: 2 }}\n    \
             - {{ layers: 1, d_model: 32, heads: 2 }}\n\
             tokens: [16384]\ntrain: {{ batch: 8, lr: 1e-2, eval_every: 32, eval_tokens: 2048 }}\n\
             fits: []\n{metrics}report:\n  sections:\n{sections}"
        ),
    )
    .unwrap();
    path
}

#[test]
fn trained_runs_record_their_metrics_everywhere() {
    let dir = fresh_dir("measured");
    let sections = "    - table: runs\n    - chart: facts_recall\n";
    let plain = facts_study(&dir, "", sections);
    let plain_keys = plan_keys(&plain);
    let study = facts_study(&dir, "metrics: [facts, top1, perplexity]\n", sections);
    // Asking for metrics re-keys every run; a study that asks for none keeps its keys.
    let measured_keys = plan_keys(&study);
    assert!(plain_keys.iter().all(|k| !measured_keys.contains(k)));
    let (store, book) = (dir.join("store"), dir.join("book"));
    let out = scalebook(&[
        "run",
        study.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--book",
        book.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut entries: Vec<PathBuf> = fs::read_dir(store.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 2);
    for entry in &entries {
        let result: Value =
            serde_json::from_str(&fs::read_to_string(entry.join("result.json")).unwrap()).unwrap();
        let m = &result["metrics"];
        let loss = result["val_loss"].as_f64().unwrap();
        assert!((m["perplexity"].as_f64().unwrap() / loss.exp() - 1.0).abs() < 1e-12);
        for name in ["top1", "facts_recall", "facts_confident", "facts_recall_d1"] {
            let v = m[name].as_f64().unwrap_or(f64::NAN);
            assert!((0.0..=1.0).contains(&v), "{name} = {v} in {m}");
        }
        // The frequent facts are learned first: the first decile recalled at least as well
        // as the last, and none above the ceiling the value noise leaves (0.9067 at V = 16).
        let first = m["facts_recall_d1"].as_f64().unwrap();
        assert!(first <= 0.9 + 0.1 / 15.0 + 0.05, "{m}");
        if let Some(last) = m["facts_recall_d10"].as_f64() {
            assert!(first >= last, "{m}");
        }
        // Every evaluation's point carries them; the points between evaluations do not.
        let curve = fs::read_to_string(entry.join("curve.jsonl")).unwrap();
        let points: Vec<Value> = curve
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(points.iter().filter(|p| p["val_loss"].is_f64()).count() >= 2);
        for p in &points {
            assert_eq!(p["val_loss"].is_f64(), p["metrics"]["top1"].is_f64(), "{p}");
        }
        assert_eq!(points.last().unwrap()["metrics"], *m);
    }
    // One column per metric in both tables.
    let frame =
        scalebook::store::collect::read_parquet(&store.join("studies/facts/runs.parquet")).unwrap();
    for name in ["top1", "perplexity", "facts_recall", "facts_recall_d1"] {
        assert!(frame.column(name).is_ok(), "runs.parquet has no `{name}`");
    }
    let curves =
        scalebook::store::collect::read_parquet(&store.join("studies/facts/curves.parquet"))
            .unwrap();
    assert!(curves.column("facts_recall").is_ok());
    // `status`: the headline numbers in the table, every one in JSON.
    let out = scalebook(&[
        "status",
        study.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    assert!(stdout(&out).contains(" top1 0."), "{}", stdout(&out));
    let out = scalebook(&[
        "status",
        study.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        rows.iter()
            .all(|r| r["metrics"]["facts_recall_d1"].is_f64())
    );
    // The recall chart is drawn.
    let figures = book.join("src/facts/figures");
    assert!(
        fs::read_dir(&figures).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("facts_recall")),
        "no facts_recall figure in {}",
        figures.display()
    );
    fs::remove_dir_all(dir).unwrap();
}

/// The mock reports an accuracy of 0.1 + 1.5·e^(−0.7·L) at its loss L: `law: metric` on the
/// trained runs' own metrics finds Err(L) = 0.9 − 1.5·e^(−0.7·L), and the final run's table
/// adds what the law predicts for it beside what it measured.
const LAW: &str = "1.7,400,410,0.34,0.28,0.01";

#[test]
fn the_metric_law_reads_the_runs_own_metrics() {
    let dir = fresh_dir("measured-law");
    let study = mock_study(
        &dir,
        "law",
        &[
            ("seed: 3\n", "seed: 3\nmetrics: [top1]\n"),
            (
                "  - { law: cost }\n",
                "  - { law: cost }\n  - { law: metric, bootstrap: 20 }\n",
            ),
        ],
    );
    let store = dir.join("store");
    let book = dir.join("book");
    let out = with_mock(
        &[
            "run",
            study.to_str().unwrap(),
            "--book",
            book.to_str().unwrap(),
        ],
        LAW,
        &store,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = with_mock(
        &["fit", study.to_str().unwrap(), "--format", "json"],
        LAW,
        &store,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fits: Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &fits["metric"];
    assert_eq!(m["metrics"], serde_json::json!(["top1"]));
    for (name, want) in [("epsilon", 0.9), ("k", 1.5), ("gamma", 0.7)] {
        let got = m[name].as_f64().unwrap();
        assert!((got - want).abs() < 1e-4, "{name}: {got} vs {want}\n{m}");
    }
    let chapter = fs::read_to_string(book.join("src/report-mock/index.md")).unwrap();
    assert!(
        chapter.contains("**The metric law on the final run.**"),
        "{chapter}"
    );
    assert!(chapter.contains("it measured 0."), "{chapter}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_bad_metrics_list_is_one_line_naming_it() {
    let dir = fresh_dir("measured-bad");
    let sections = "    - table: runs\n";
    let cases = [
        (
            "metrics: [top5]\n",
            "metrics[0]: unknown metric `top5`: use top1, perplexity, facts, markov",
        ),
        (
            "metrics: [top1, top1]\n",
            "metrics[1]: `top1` is listed twice",
        ),
        ("metrics: []\n", "metrics: is empty"),
        (
            "metrics: [top1, markov]\n",
            "metrics[1]: `markov` compares with the Zipf–Markov language's own predictions",
        ),
    ];
    for (metrics, want) in cases {
        let study = facts_study(&dir, metrics, sections);
        let out = scalebook(&["validate", study.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{metrics}");
        let text = stderr(&out);
        assert!(text.contains(want), "{metrics}: {text}");
        assert_no_crash(&text, &study);
    }
    // `facts` needs the facts language.
    let markov = mock_study(
        &dir,
        "markov",
        &[("seed: 3\n", "seed: 3\nmetrics: [facts]\n")],
    );
    let out = scalebook(&["validate", markov.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("metrics[0]: `facts` measures the facts language's recall"),
        "{}",
        stderr(&out)
    );
    // An external trainer's metrics are names of its own, but names.
    let external = mock_study(
        &dir,
        "external",
        &[(
            "seed: 3\n",
            "seed: 3\nmetrics: [exact_match, Top-1]\ntrainer:\n  command: python3 t.py --spec {spec}\n  version: t/1\n",
        )],
    );
    let out = scalebook(&["validate", external.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(
        text.contains("metrics[1]: `Top-1` is not a metric name"),
        "{text}"
    );
    assert!(!text.contains("metrics[0]"), "{text}");
    // Imported runs name their metric columns in `results.metrics` instead.
    let csv = dir.join("r.csv");
    fs::write(&csv, "run,params,tokens,loss\na,1e6,1e7,3.0\n").unwrap();
    let imported = dir.join("imported.yaml");
    fs::write(
        &imported,
        "version: 1\nname: imported\nmetrics: [top1]\nresults:\n  path: r.csv\n  columns: { name: run, params: params, tokens: tokens, loss: loss }\n",
    )
    .unwrap();
    let out = scalebook(&["validate", imported.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("metrics: does not apply when `results:` imports runs"));
    fs::remove_dir_all(dir).unwrap();
}

/// The mock's facts recall is a sigmoid of its facts task loss, Acc = 0.1 + 0.5/(1 +
/// e^(4·(ℓ − 1))) — over losses of 1.9–2.9 (`ACCURACY_LAW`) the recall runs 0.30–0.50,
/// across the sigmoid's midpoint: the two-step law recovers that sigmoid from the trained
/// runs, the direct
/// law fits beside it, and the chapter gives both laws' predictions for the final run with
/// the `accuracy` chart.
const ACCURACY_LAW: &str = "1.2,20,10,0.34,0.28,0.01";

#[test]
fn the_two_step_and_direct_laws_predict_a_task_accuracy() {
    let dir = fresh_dir("measured-accuracy");
    let study = mock_study(
        &dir,
        "accuracy",
        &[
            (
                "seed: 3\ndata: { vocab: 64, order: 2 }\n",
                "seed: 3\nmetrics: [facts]\ndata: { vocab: 64, facts: 200, zipf: 1.1 }\n",
            ),
            (
                "  - { law: cost }\n",
                "  - { law: cost }\n  - { law: metric, form: two_step, bootstrap: 20 }\n  \
                 - { law: metric, form: direct, bootstrap: 20 }\n",
            ),
        ],
    );
    let store = dir.join("store");
    let book = dir.join("book");
    let study_arg = study.to_str().unwrap();
    let out = with_mock(
        &["run", study_arg, "--book", book.to_str().unwrap()],
        ACCURACY_LAW,
        &store,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = with_mock(
        &["fit", study_arg, "--format", "json"],
        ACCURACY_LAW,
        &store,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fits: Value = serde_json::from_slice(&out.stdout).unwrap();
    let two = &fits["metric_two_step"];
    assert_eq!(two["metric"], "facts_recall");
    assert_eq!(two["task_loss"], "facts_nll");
    let sigmoid = &two["law"]["sigmoid"];
    for (name, want) in [("a", 0.5), ("b", 0.1), ("s", 4.0), ("midpoint", 1.0)] {
        let got = sigmoid[name].as_f64().unwrap();
        assert!(
            (got / want - 1.0).abs() < 1e-3,
            "{name}: {got} vs {want}\n{two}"
        );
    }
    assert_eq!(two["resampled"].as_array().unwrap().len(), 20, "{two}");
    let held = two["holdout"]["points"].as_array().unwrap();
    assert_eq!(held.len(), 3, "{two}");
    let direct = &fits["metric_direct"];
    assert!(direct["law"]["alpha"].as_f64().unwrap() > 0.0, "{direct}");
    assert!(direct["rmse"].as_f64().unwrap() < 0.05, "{direct}");
    let chapter = fs::read_to_string(book.join("src/report-mock/index.md")).unwrap();
    for want in [
        "**Accuracy in two steps**",
        "**Accuracy directly from compute**",
        "**The two-step law on the final run.** It predicts `facts_recall` = ",
        "**The direct law on the final run.** It predicts `facts_recall` = ",
        "id=\"chart-accuracy\"",
    ] {
        assert!(chapter.contains(want), "{want}\n{chapter}");
    }
    assert!(book.join("src/report-mock/figures/accuracy.svg").exists());
    fs::remove_dir_all(dir).unwrap();
}

/// Every bad two-step or direct law is one line naming the field, exit 2.
#[test]
fn every_bad_accuracy_law_is_one_line_naming_it() {
    let dir = fresh_dir("measured-accuracy-bad");
    let cases = [
        (
            "  - { law: metric, form: two_step, metrics: [facts_recall, top1] }\n",
            "fits[4].metrics: form `two_step` models one accuracy: name one metric",
        ),
        (
            "  - { law: metric, form: two_step, task_loss: nll }\n",
            "fits[4].task_loss: `nll` is neither `loss` (the validation loss) nor a metric",
        ),
        (
            "  - { law: metric, form: direct, task_loss: loss }\n",
            "fits[4].task_loss: only form `two_step` reads a task loss",
        ),
        (
            "  - { law: metric, form: direct }\n  - { law: metric, form: direct }\n",
            "fits[5]: duplicate fit (metric, form direct)",
        ),
        (
            "  - { law: power, x: params, form: two_step }\n",
            "fits[4].form: law `power` takes form",
        ),
        (
            "  - { law: chinchilla, task_loss: loss }\n",
            "fits[4].task_loss",
        ),
    ];
    for (fit, want) in cases {
        let study = mock_study(
            &dir,
            "bad",
            &[
                (
                    "seed: 3\ndata: { vocab: 64, order: 2 }\n",
                    "seed: 3\nmetrics: [top1, facts]\ndata: { vocab: 64, facts: 200, zipf: 1.1 }\n",
                ),
                (
                    "  - { law: cost }\n",
                    &format!("  - {{ law: cost }}\n{fit}"),
                ),
            ],
        );
        let out = scalebook(&["validate", study.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{fit}");
        let text = stderr(&out);
        assert!(text.contains(want), "{fit}: {text}");
        assert_no_crash(&text, &study);
    }
    fs::remove_dir_all(dir).unwrap();
}
