//! Downstream metrics of imported runs (`results.metrics`, `results.join`) and `law: metric`:
//! the law recovers a known Err(L), predicts the runs it is asked for from their loss and
//! from compute, and every bad table or option is one line naming the file, row or field.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{assert_no_crash, fit_json, fresh_dir, scalebook, stderr};

/// Err(L) = 0.86 − 2.1·exp(−0.7·L) split over two tasks (accuracies 1 − Err ± 0.02), on a
/// grid whose loss is L = 1.8 + 400/N^0.34 + 410/D^0.28; the runs table holds the loss, the
/// tasks table the accuracies, both keyed by `run`.
fn tables(dir: &Path) {
    let mut runs = String::from("run,params,tokens,loss\n");
    let mut tasks = String::from("run,task_a,task_b\n");
    for (i, n) in [1e7, 3e7, 1e8, 3e8, 1e9].iter().enumerate() {
        for (j, m) in [10.0, 20.0, 80.0].iter().enumerate() {
            let d = m * n;
            let loss = 1.8 + 400.0 / f64::powf(*n, 0.34) + 410.0 / f64::powf(d, 0.28);
            let err = 0.86 - 2.1 * (-0.7 * loss).exp();
            let name = format!("r{i}-{j}");
            runs.push_str(&format!("{name},{n},{d},{loss}\n"));
            // Listed in another order: the join goes by key.
            tasks.insert_str(
                tasks.find('\n').unwrap() + 1,
                &format!("{name},{},{}\n", 1.0 - err + 0.02, 1.0 - err - 0.02),
            );
        }
    }
    fs::write(dir.join("runs.csv"), runs).unwrap();
    fs::write(dir.join("tasks.csv"), tasks).unwrap();
}

fn study(dir: &Path, results: &str, fits: &str) -> PathBuf {
    let path = dir.join("m.yaml");
    fs::write(
        &path,
        format!(
            "version: 1\nname: m\nresults:\n  path: runs.csv\n  columns: {{ name: run, params: params, tokens: tokens, loss: loss }}\n{results}fits:\n{fits}holdout: {{ largest: 1 }}\nreport:\n  sections:\n    - table: laws\n    - chart: metric\n"
        ),
    )
    .unwrap();
    path
}

const JOIN: &str = "  join: { path: tasks.csv, on: run }\n  metrics: [task_a, task_b]\n";
const FITS: &str = "  - { law: chinchilla, bootstrap: 0 }\n  - { law: metric, bootstrap: 50 }\n";

#[test]
fn the_metric_law_recovers_its_truth_and_predicts_from_loss_and_compute() {
    let dir = fresh_dir("metric");
    tables(&dir);
    let path = study(&dir, JOIN, FITS);
    let store = dir.join("store");
    let book = dir.join("book");
    let out = scalebook(&[
        "report",
        path.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--book",
        book.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_no_crash(&err, &path);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let fits: Value =
        serde_json::from_str(&fs::read_to_string(store.join("studies/m/fits.json")).unwrap())
            .unwrap();
    let m = &fits["metric"];
    assert_eq!(m["form"], "error_from_loss");
    assert_eq!(m["metrics"], serde_json::json!(["task_a", "task_b"]));
    assert_eq!(m["points"], 15);
    for (key, want) in [("epsilon", 0.86), ("k", 2.1), ("gamma", 0.7)] {
        let got = m[key].as_f64().unwrap();
        assert!((got / want - 1.0).abs() < 1e-6, "{key}: {got}");
    }
    let [lo, hi] = [
        m["ci"]["gamma"][0].as_f64().unwrap(),
        m["ci"]["gamma"][1].as_f64().unwrap(),
    ];
    assert!(lo <= 0.7 && 0.7 <= hi, "{lo} {hi}");
    // Asked for the largest size, fitted on the others: exact from its loss, and from compute
    // through the Chinchilla law fitted without it.
    let h = &m["holdout"];
    assert_eq!(h["fitted_points"], 12);
    assert_eq!(h["loss_law"], "chinchilla");
    let points = h["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    for p in points {
        assert!(p["name"].as_str().unwrap().starts_with("r4-"), "{p}");
        assert!(p["rel_error"].as_f64().unwrap() < 1e-6, "{p}");
        assert!(p["rel_error_from_compute"].as_f64().unwrap() < 1e-3, "{p}");
    }
    // The held-out size reaches lower losses than any fitted run: an extrapolation, said so.
    let codes = fits["warning_codes"].to_string();
    assert!(codes.contains("metric_extrapolated"), "{codes}");
    assert!(!codes.contains("metric_flat"), "{codes}");
    let chapter = fs::read_to_string(book.join("src/m/index.md")).unwrap();
    assert!(
        chapter.contains("**Downstream error from loss**"),
        "{chapter}"
    );
    assert!(
        chapter.contains("Downstream error against loss"),
        "{chapter}"
    );
    // `predict` names the runs instead of the study's hold-out.
    let path = study(
        &dir,
        JOIN,
        "  - { law: metric, bootstrap: 0, metrics: [task_a], predict: [r0-0, r2-1] }\n",
    );
    let fits = fit_json(&path, &store);
    let h = &fits["metric"]["holdout"];
    assert_eq!(h["kind"], "predict");
    assert_eq!(h["fitted_points"], 13);
    assert_eq!(fits["metric"]["metrics"], serde_json::json!(["task_a"]));
    // Tasks at chance across the grid: the error does not move, and the law is questioned.
    let chance: String = fs::read_to_string(dir.join("tasks.csv"))
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| match i {
            0 => format!("{l}\n"),
            _ => format!(
                "{},{},0.25\n",
                l.split(',').next().unwrap(),
                0.25 + 1e-4 * (i % 2) as f64
            ),
        })
        .collect();
    fs::write(dir.join("tasks.csv"), chance).unwrap();
    let path = study(&dir, JOIN, FITS);
    let fits = fit_json(&path, &store);
    let questioning = fits["questioning_codes"].to_string();
    assert!(questioning.contains("metric_flat"), "{questioning}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_metric_tables_and_options_are_refused_naming_them() {
    let dir = fresh_dir("metric-bad");
    tables(&dir);
    fs::write(dir.join("dup.csv"), "run,task_a\nr0-0,0.5\nr0-0,0.6\n").unwrap();
    let short = fs::read_to_string(dir.join("tasks.csv"))
        .unwrap()
        .replace("r3-1,", "x3-1,");
    fs::write(dir.join("short.csv"), short).unwrap();
    // The first data row's task_a left empty.
    let gap: Vec<String> = fs::read_to_string(dir.join("tasks.csv"))
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut cells: Vec<&str> = l.split(',').collect();
            if i == 1 {
                cells[1] = "";
            }
            cells.join(",")
        })
        .collect();
    fs::write(dir.join("gap.csv"), gap.join("\n") + "\n").unwrap();
    let cases: [(&str, &str, &str); 9] = [
        (
            "  join: { path: dup.csv, on: run }\n  metrics: [task_a]\n",
            FITS,
            "dup.csv: row 2, column `run`: `r0-0` is also row 1",
        ),
        (
            "  join: { path: short.csv, on: run }\n  metrics: [task_a]\n",
            FITS,
            "column `run`: `r3-1` has no row in",
        ),
        (
            "  join: { path: tasks.csv, on: run }\n  metrics: [task_c]\n",
            FITS,
            "results.metrics.task_c: no column `task_c` in the results table or the joined one",
        ),
        (
            "  join: { path: gap.csv, on: run }\n  metrics: [task_a, task_b]\n",
            FITS,
            "gap.csv: row 1, column `task_a`: empty or not a finite number",
        ),
        (
            "  join: { path: missing.csv, on: run }\n  metrics: [task_a]\n",
            FITS,
            "results.join.path",
        ),
        (
            "  join: { path: tasks.csv, on: run }\n",
            FITS,
            "results.join",
        ),
        ("", FITS, "law `metric` needs runs that record metrics"),
        (
            JOIN,
            "  - { law: metric, metrics: [task_z] }\n",
            "fits[0].metrics",
        ),
        (JOIN, "  - { law: metric, form: log }\n", "fits[0].form"),
    ];
    for (results, fits, words) in cases {
        let path = study(&dir, results, fits);
        let out = scalebook(&[
            "fit",
            path.to_str().unwrap(),
            "--store",
            dir.join("store").to_str().unwrap(),
        ]);
        let err = stderr(&out);
        assert_no_crash(&err, &path);
        assert_eq!(out.status.code(), Some(2), "{results}{fits}: {err}");
        assert!(err.contains(words), "{results}{fits}: {err}");
        // One line per problem, each naming its file.
        assert!(
            err.trim()
                .lines()
                .all(|l| l.contains("m.yaml:") || l.contains(".csv")),
            "{results}{fits}: {err}"
        );
    }
    fs::remove_dir_all(dir).unwrap();
}
