//! Metrics through the trainer contract: the job names the metrics a study asks for, the
//! trainer reports them by name in its curve and result, and a run whose trainer leaves one
//! out — or writes a field the contract does not name — fails, naming it.

use std::path::Path;

use serde_json::Value;

use crate::external::{BROKEN, has_python_module, numpy_study, result};
use crate::support::{assert_no_crash, fresh_dir, root, scalebook, stderr};

/// Every run's record in `store`, by its planned tokens.
fn by_tokens(store: &Path, tokens: u64) -> Value {
    for entry in std::fs::read_dir(store.join("runs")).unwrap() {
        let path = entry.unwrap().path().join("result.json");
        let r: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        if r["tokens"].as_u64() == Some(tokens) {
            return r;
        }
    }
    panic!("no run of {tokens} tokens in {}", store.display());
}

#[test]
fn a_trainer_reports_the_metrics_a_study_asks_for_or_its_run_fails_naming_them() {
    let dir = fresh_dir("trainer-metrics");
    let study = dir.join("m.yaml");
    // 16 steps: reports both; 192: writes a field the contract does not name; 208: leaves
    // `top1` (the last asked for, in sorted order) out of its result.
    let text = BROKEN
        .replace(
            "name: broken-trainer",
            "name: trainer-metrics\nmetrics: [top1, exact_match]",
        )
        .replace(
            "tokens: [1024, 2048, 3072, 4096, 5120, 6144, 7168, 8192, 9216, 10240]",
            "tokens: [1024, 12288, 13312]",
        )
        .replace(
            "version: fake/1",
            &format!(
                "version: fake/1\n  workdir: {}",
                root().join("tests/fixtures/trainers").display()
            ),
        );
    std::fs::write(&study, text).unwrap();
    let store = dir.join("store");
    let out = scalebook(&[
        "run",
        study.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--no-report",
    ]);
    let err = stderr(&out);
    assert_no_crash(&err, &study);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let ok = by_tokens(&store, 1024);
    assert_eq!(ok["status"], "ok", "{ok}");
    let want = 1.0 - 3.05 / 5.0;
    for name in ["top1", "exact_match"] {
        assert_eq!(ok["metrics"][name].as_f64(), Some(want), "{ok}");
    }
    let unknown = by_tokens(&store, 12288);
    assert_eq!(unknown["status"], "failed");
    let why = unknown["reason"].as_str().unwrap();
    assert!(
        why.contains("curve.jsonl line 1: unknown field `accuracy`"),
        "{why}"
    );
    let missing = by_tokens(&store, 13312);
    assert_eq!(missing["status"], "failed");
    let why = missing["reason"].as_str().unwrap();
    assert!(
        why.contains(
            "the study asks for metric `top1` (`metrics:`), which the trainer did not report \
             in result.json (`metrics`)"
        ),
        "{why}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The numpy example measures the top-1 accuracy and the perplexity when asked, and refuses
/// a metric it does not measure, naming it.
#[test]
fn the_numpy_trainer_measures_top1_and_refuses_what_it_cannot() {
    if !has_python_module("numpy") {
        scalebook::testing::skip(
            "the_numpy_trainer_measures_top1_and_refuses_what_it_cannot",
            "python3 with numpy is not installed (.ci/run installs it)",
        );
        return;
    }
    let dir = fresh_dir("numpy-metrics");
    let file = numpy_study(&dir, "numpy/1");
    let study = |metrics: &str| {
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("tokens: [2e4, 4e4]", "tokens: [2e4]")
            .replace("seed: 3\n", &format!("seed: 3\nmetrics: {metrics}\n"));
        let path = dir.join(format!("s{}.yaml", metrics.len()));
        std::fs::write(&path, text).unwrap();
        path
    };
    let store = dir.join("store");
    let good = study("[top1, perplexity]");
    let out = scalebook(&[
        "run",
        good.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--no-report",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = result(&store, "l1-d16-t2e4");
    let loss = r["val_loss"].as_f64().unwrap();
    let m = &r["metrics"];
    assert!(
        (m["perplexity"].as_f64().unwrap() / loss.exp() - 1.0).abs() < 1e-9,
        "{r}"
    );
    let top1 = m["top1"].as_f64().unwrap();
    assert!(top1 > 0.0 && top1 < 1.0, "{r}");
    let bad = study("[top1, exact_match]");
    let out = scalebook(&[
        "run",
        bad.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--no-report",
    ]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "the study asks for metric(s) exact_match; this trainer measures top1, perplexity"
        ),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
