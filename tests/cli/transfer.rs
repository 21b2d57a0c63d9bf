//! Learning-rate transfer (`train.lr_transfer`) end to end on the mock executor, whose law
//! has a known learning-rate optimum (`;lr=c,a,b,k`): the sweep trains its sizes, the other
//! sizes wait for it ("lr decided after the sweep" in `plan` and `status`), then train at the
//! optimum it finds; the chapter shows the transfer and `verify` re-decides it.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::support::{assert_no_crash, fresh_dir, stderr, stdout, with_mock as mock};

const STUDY: &str = "\
version: 1
name: transfer
title: Transfer
seed: 1
data: { source: synthetic, vocab: 64, facts: 256, zipf: 1.8 }
model:
  context: 16
  parametrization: mup
  base_width: 16
  sizes:
    - { layers: 2, d_model: 16, heads: 2 }
    - { layers: 2, d_model: 24, heads: 2 }
    - { layers: 2, d_model: 32, heads: 2 }
    - { layers: 2, d_model: 48, heads: 2 }
tokens: [2e4, 4e4, 8e4]
train:
  batch: 8
  lr: [2.5e-3, 5e-3, 1e-2, 2e-2, 4e-2]
  lr_transfer: { sweep: [l2-d16], check: [l2-d48] }
fits:
  - { law: chinchilla, bootstrap: 20 }
report:
  sections:
    - table: learning_rate
    - table: lr_transfer
    - table: warnings
";

/// Chinchilla's law with an optimum at 1e-2 for every size and token count.
const MUP_LAW: &str = "1.69,406.4,410.7,0.34,0.28,0.0;lr=0.01,0,0,0.05";

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("transfer.yaml");
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn fits(store: &Path) -> Value {
    let text = fs::read_to_string(store.join("studies/transfer/fits.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_sweep_decides_the_other_sizes_learning_rate_under_mup() {
    let dir = fresh_dir("transfer-mup");
    let study = write(&dir, STUDY);
    let store = dir.join("store");
    // Before the sweep: its 2 sizes × 3 token counts × 5 rates are planned, the rest wait.
    let out = mock(&["plan", &study], MUP_LAW, &store);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("30 runs, "), "{text}");
    assert!(
        text.contains(
            "plus 9 run(s): lr decided after the sweep (`train.lr_transfer`, rule mup, swept at l2-d16;"
        ),
        "{text}"
    );
    let out = mock(&["status", &study], MUP_LAW, &store);
    assert!(
        stdout(&out).contains("9 waiting for the sweep"),
        "{}",
        stdout(&out)
    );
    // The whole study: the sweep, then the transferred runs at the sweep's optimum.
    let book = dir.join("book");
    let mut args = vec!["run", study.as_str(), "--book", book.to_str().unwrap()];
    args.push("--jobs");
    args.push("2");
    let out = mock(&args, MUP_LAW, &store);
    let err = stderr(&out);
    assert_no_crash(&err, Path::new(&study));
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("learning rates decided by the sweep: l2-d24-t2e4 at 0.01"),
        "{err}"
    );
    // 30 swept + 6 transferred (d24, d32); d48's transferred run is its swept 1e-2 run.
    assert!(err.contains("36 runs — "), "{err}");
    let f = fits(&store);
    let t = &f["hyper"]["transfer"];
    assert_eq!(t["rule"], "mup");
    let points = t["points"].as_array().unwrap();
    assert_eq!(points.len(), 9);
    for p in points {
        assert_eq!(p["lr"], 0.01, "{p}");
        assert_eq!(p["outside_sweep"], false, "{p}");
    }
    let checked: Vec<&Value> = points.iter().filter(|p| p["check"].is_object()).collect();
    assert_eq!(checked.len(), 3);
    for p in checked {
        assert_eq!(p["check"]["best_lr"], 0.01, "{p}");
        assert_eq!(p["check"]["excess"], 0.0, "{p}");
    }
    assert!(
        !f["warning_codes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().starts_with("lr_transfer")),
        "{f}"
    );
    let chapter = fs::read_to_string(book.join("src/transfer/index.md")).unwrap();
    assert!(
        chapter.contains("## Learning rate transferred"),
        "{chapter}"
    );
    assert!(chapter.contains("| `l2-d32-t8e4` |"), "{chapter}");
    // Decided: status lists the transferred runs as done; nothing waits.
    let out = mock(&["status", &study], MUP_LAW, &store);
    let text = stdout(&out);
    assert!(text.contains("l2-d32-t8e4-lr1e-2"), "{text}");
    assert!(text.contains("36 runs: 36 done"), "{text}");
    assert!(!text.contains("waiting"), "{text}");
    // verify decides the transfer again from the sweep's records.
    let out = mock(
        &[
            "verify",
            &study,
            "--sample",
            "0",
            "--book",
            book.to_str().unwrap(),
        ],
        MUP_LAW,
        &store,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Without µP the law rule fits η*(N, D) to the swept sizes and gives each other size its
/// value, rounded to two significant figures; a check size whose own sweep beats the
/// transferred run by more than the margin is flagged.
#[test]
fn the_law_rule_gives_each_size_its_fitted_optimum_and_a_failed_check_is_flagged() {
    let dir = fresh_dir("transfer-law");
    let text = STUDY
        .replace("  parametrization: mup\n  base_width: 16\n", "")
        .replace(
            "lr_transfer: { sweep: [l2-d16], check: [l2-d48] }",
            "lr_transfer: { sweep: [l2-d16, l2-d24], check: [l2-d48] }",
        );
    let study = write(&dir, &text);
    let store = dir.join("store");
    // η* = 1.5·N^−0.5: the sweep's parabola in ln lr is exact, so the law is too.
    let law = "1.69,406.4,410.7,0.34,0.28,0.0;lr=1.5,-0.5,0,0.05";
    let out = mock(&["run", &study, "--no-report"], law, &store);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let f = fits(&store);
    let t = &f["hyper"]["transfer"];
    assert_eq!(t["rule"], "law");
    for p in t["points"].as_array().unwrap() {
        let want = 1.5 * p["n"].as_f64().unwrap().powf(-0.5);
        let exact = p["lr_exact"].as_f64().unwrap();
        assert!((exact / want - 1.0).abs() < 1e-6, "{p}: {exact} vs {want}");
        let lr = p["lr"].as_f64().unwrap();
        assert!((lr / want - 1.0).abs() < 0.05, "{p}: two figures of {want}");
    }
    // The µP rule on a mock whose optimum falls with N, as under the standard
    // parametrisation: the width-16 optimum is wrong for width 48, and the check flags it.
    let mup_text = STUDY.replace(
        "lr_transfer: { sweep: [l2-d16], check: [l2-d48] }",
        "lr_transfer: { sweep: [l2-d16], check: [l2-d48], rule: mup }",
    );
    let study = write(&dir, &mup_text);
    let store = dir.join("store-miss");
    let out = mock(
        &["run", &study, "--no-report"],
        "1.69,406.4,410.7,0.34,0.28,0.0;lr=30,-0.8,0,0.05",
        &store,
    );
    assert!(matches!(out.status.code(), Some(0 | 4)), "{}", stderr(&out));
    let f = fits(&store);
    let codes: Vec<&str> = f["warning_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(codes.contains(&"lr_transfer_loses"), "{codes:?}");
    assert!(
        f["questioning_codes"]
            .as_array()
            .unwrap()
            .contains(&Value::from("lr_transfer_loses")),
        "{f}"
    );
}
