//! Batch sweeps (`train.batch` a list) end to end on the mock executor, whose law has a known
//! batch optimum in Step Law's form (`;batch=c,b,k`: B*(D) = c·D^b tokens per step): the
//! fits recover the law's exponent, the final run trains at the batch size it gives, next to
//! its neighbour at the comparison batch size; bad batch sweeps are refused naming the field.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::support::{assert_no_crash, fresh_dir, scalebook, stderr, stdout, with_mock as mock};

const STUDY: &str = "\
version: 1
name: batch
title: Batch
seed: 1
data: { source: synthetic, vocab: 64, facts: 256, zipf: 1.8 }
model:
  context: 16
  sizes:
    - { layers: 2, d_model: 16, heads: 2 }
    - { layers: 2, d_model: 24, heads: 2 }
    - { layers: 2, d_model: 32, heads: 2 }
    - { layers: 2, d_model: 48, heads: 2 }
tokens: [1.6e6, 6.4e6, 2.56e7]
train:
  batch: [16, 32, 64, 128, 256, 512, 1024, 2048]
  lr: [2.5e-3, 5e-3, 1e-2]
fits:
  - { law: chinchilla, bootstrap: 20 }
final: { budget: 2e13, compare_batch: 16 }
report:
  sections:
    - chart: batch_size
    - table: batch_size
    - chart: loss_vs_lr
    - table: final
    - table: warnings
";

/// Chinchilla's law without noise, an lr optimum at 5e-3 and Step Law's B*(D) = 0.58·D^0.571.
const LAW: &str = "1.69,406.4,410.7,0.34,0.28,0.0;lr=0.005,0,0,0.05;batch=0.58,0.571,0.02";

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("batch.yaml");
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The spec of the store's one run whose name `pick` accepts.
fn spec_named(store: &Path, pick: impl Fn(&str) -> bool) -> Value {
    let mut found = Vec::new();
    for entry in fs::read_dir(store.join("runs")).unwrap() {
        let path = entry.unwrap().path().join("spec.json");
        if let Ok(text) = fs::read_to_string(&path) {
            let spec: Value = serde_json::from_str(&text).unwrap();
            if pick(spec["name"].as_str().unwrap()) {
                found.push(spec);
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

#[test]
fn the_fits_recover_step_laws_batch_exponent_and_the_final_run_trains_at_it() {
    let dir = fresh_dir("batch-law");
    let study = write(&dir, STUDY);
    let store = dir.join("store");
    let out = mock(&["plan", &study], LAW, &store);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    // 4 sizes × 3 token counts × 3 learning rates × 8 batch sizes.
    assert!(text.contains("288 runs, "), "{text}");
    assert!(text.contains("l2-d16-t1.6e6-lr5e-3-b64 "), "{text}");
    let book = dir.join("book");
    let args = ["run", study.as_str(), "--book", book.to_str().unwrap()];
    let out = mock(&args, LAW, &store);
    let err = stderr(&out);
    assert_no_crash(&err, Path::new(&study));
    assert_eq!(out.status.code(), Some(0), "{err}");
    let f: Value =
        serde_json::from_str(&fs::read_to_string(store.join("studies/batch/fits.json")).unwrap())
            .unwrap();
    let b = &f["hyper"]["batch"];
    assert_eq!(b["swept"].as_array().unwrap().len(), 8);
    // Every point's best batch lies inside the sweep, so the refined optima are exact and
    // the law is Step Law's.
    let law = &b["law_d"];
    let exponent = law["b"].as_f64().unwrap();
    let c = law["c"].as_f64().unwrap();
    assert!((exponent - 0.571).abs() < 1e-3, "{law}");
    assert!((c / 0.58 - 1.0).abs() < 0.02, "{law}");
    let ci = law["ci"][1].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() <= 0.5711 && 0.5709 <= ci[1].as_f64().unwrap());
    for p in f["hyper"]["points"].as_array().unwrap() {
        assert_eq!(p["lr"], 0.005, "{p}");
        assert_eq!(p["batch"]["at_edge"], false, "{p}");
    }
    let codes = f["warning_codes"].as_array().unwrap();
    assert!(!codes.iter().any(|c| c == "batch_at_edge"), "{codes:?}");
    // The final run at the law's batch size for its tokens, its neighbour at 16.
    let chapter = fs::read_to_string(book.join("src/batch/index.md")).unwrap();
    assert!(chapter.contains("## Tuned batch sizes"), "{chapter}");
    assert!(chapter.contains("B*(D) = c·D^b"), "{chapter}");
    assert!(err.contains("at the comparison batch size 16"), "{err}");
    let final_spec = spec_named(&store, |name| name.ends_with("-final"));
    let tokens = final_spec["identity"]["tokens"].as_f64().unwrap();
    let batch = final_spec["identity"]["train"]["batch"].as_f64().unwrap();
    // B*(D) in sequences of 16 tokens, to two significant figures.
    let want = 0.58 * tokens.powf(0.571) / 16.0;
    assert!(
        (batch / want - 1.0).abs() < 0.05,
        "{batch} sequences vs B*(D) = {want}"
    );
    let neighbour = spec_named(&store, |name| name.ends_with("-final-b16"));
    assert_eq!(
        neighbour["identity"]["tokens"],
        final_spec["identity"]["tokens"]
    );
    assert_eq!(neighbour["identity"]["train"]["batch"], 16);
    assert!(chapter.contains("| batch 16 |"), "{chapter}");
    assert!(chapter.contains("The laws' batch size ends"), "{chapter}");
    // verify re-plans the final run, its baseline and its neighbour.
    let out = mock(
        &[
            "verify",
            &study,
            "--sample",
            "0",
            "--book",
            book.to_str().unwrap(),
        ],
        LAW,
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

/// A single batch size keeps every key and name; a batch sweep refuses token counts that no
/// common step divides closely enough, a comparison batch outside the sweep, and shared
/// trunks — each naming its field.
#[test]
fn bad_batch_sweeps_are_refused_naming_the_field() {
    let dir = fresh_dir("batch-bad");
    let cases = [
        (
            "tokens: [1.6e6, 6.4e6, 2.56e7]",
            "tokens: [4.5e4, 6.4e6, 2.56e7]",
            "tokens[0]",
            "from the nearest count every swept batch divides",
        ),
        (
            "compare_batch: 16",
            "compare_batch: 12",
            "final.compare_batch",
            "12 is not one of the swept batch sizes",
        ),
        (
            "batch: [16, 32, 64, 128, 256, 512, 1024, 2048]",
            "batch: [16, 32, 32]",
            "train.batch[2]",
            "32 is listed twice",
        ),
        (
            "batch: [16, 32, 64, 128, 256, 512, 1024, 2048]",
            "batch: [16, 0]",
            "train.batch[1]",
            "must be between 1 and 65536",
        ),
        (
            "  lr: [2.5e-3, 5e-3, 1e-2]",
            "  lr: [2.5e-3, 5e-3, 1e-2]\n  schedule: wsd\n  branches: true",
            "train.branches",
            "a trunk trains at one batch size",
        ),
    ];
    for (from, to, field, words) in cases {
        let study = write(&dir, &STUDY.replace(from, to));
        let out = scalebook(&["validate", &study]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{to}: {err}");
        assert!(err.contains(field) && err.contains(words), "{to}: {err}");
        assert_no_crash(&err, Path::new(&study));
    }
    // One batch size: the comparison batch has nothing to compare.
    let study = write(
        &dir,
        &STUDY.replace(
            "batch: [16, 32, 64, 128, 256, 512, 1024, 2048]",
            "batch: 16",
        ),
    );
    let out = scalebook(&["validate", &study]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("final.compare_batch"),
        "{}",
        stderr(&out)
    );
}

/// Under `lr_transfer` with a batch sweep, each transferred point takes the swept batch size
/// nearest the swept sizes' B* at its tokens, with the learning rate they give it.
#[test]
fn transferred_points_take_the_swept_sizes_batch_optimum() {
    let dir = fresh_dir("batch-transfer");
    let text = STUDY
        .replace(
            "model:\n  context: 16\n",
            "model:\n  context: 16\n  parametrization: mup\n  base_width: 16\n",
        )
        .replace(
            "  lr: [2.5e-3, 5e-3, 1e-2]\n",
            "  lr: [2.5e-3, 5e-3, 1e-2]\n  lr_transfer: { sweep: [l2-d16], check: [l2-d48] }\n",
        );
    let study = write(&dir, &text);
    let store = dir.join("store");
    let out = mock(&["run", &study, "--no-report"], LAW, &store);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let f: Value =
        serde_json::from_str(&fs::read_to_string(store.join("studies/batch/fits.json")).unwrap())
            .unwrap();
    let points = f["hyper"]["transfer"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 9);
    for p in points {
        // B*(D) = 0.58·D^0.571 tokens over 16-token sequences, nearest swept size in ln B.
        let d = p["d"].as_f64().unwrap();
        let want = 0.58 * d.powf(0.571) / 16.0;
        let got = p["batch"].as_f64().unwrap();
        assert!(
            (got / want).ln().abs() <= 2f64.sqrt().ln() + 1e-9,
            "{p}: {want}"
        );
        assert_eq!(p["lr"], 0.005, "{p}");
    }
}
