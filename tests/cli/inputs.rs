//! Every user input ends in a documented exit code (0–5) with a message, never a panic:
//! every numeric option of every command with zero, negative, huge, non-numeric and
//! non-finite values, and every path argument pointed at the wrong kind of thing.

use std::fs;
use std::path::Path;

use crate::support::{fresh_dir, scalebook, stderr};

const VALUES: [&str; 8] = [
    "0",
    "-1",
    "1e30",
    "99999999999999999999",
    "abc",
    "nan",
    "inf",
    "",
];

/// Run and check: exit 0–5, no panic, and a message when it failed.
fn check(args: &[&str]) {
    let out = scalebook(args);
    let code = out.status.code();
    let err = stderr(&out);
    assert!(
        matches!(code, Some(0..=5)),
        "`scalebook {}` exited {code:?}:\n{err}",
        args.join(" ")
    );
    assert!(
        !err.contains("panicked"),
        "`scalebook {}`:\n{err}",
        args.join(" ")
    );
    if code != Some(0) {
        assert!(
            !err.trim().is_empty(),
            "`scalebook {}` failed silently",
            args.join(" ")
        );
    }
}

/// `base` with `--flag value` for every value.
fn sweep(base: &[&str], flags: &[&str]) {
    for flag in flags {
        for value in VALUES {
            let mut args = base.to_vec();
            args.extend([*flag, value]);
            check(&args);
        }
    }
}

#[test]
fn every_numeric_option_of_every_command_exits_cleanly() {
    let dir = fresh_dir("inputs");
    let study = "tests/fixtures/valid/tiny_sweep.yaml";
    let store = dir.join("store");
    let book = dir.join("book");
    let (store, book) = (store.to_str().unwrap(), book.to_str().unwrap());
    let mock = ["--executor", "mock"];
    // A filled store first, so fit, report and status have something to read.
    check(&[&["run", study, "--store", store, "--no-report"][..], &mock].concat());
    sweep(
        &[&["run", study, "--store", store, "--no-report"][..], &mock].concat(),
        &["--jobs", "--threads-per-job", "--mock-law"],
    );
    // As many jobs as anyone may ask for: no more workers than runs start.
    check(
        &[
            &[
                "run",
                study,
                "--store",
                store,
                "--no-report",
                "--jobs",
                "4096",
            ][..],
            &mock,
        ]
        .concat(),
    );
    sweep(
        &[&["fit", study, "--store", store][..], &mock].concat(),
        &["--wall-budget", "--max-params", "--mock-law"],
    );
    sweep(
        &[
            "report",
            study,
            "--store",
            store,
            "--book",
            book,
            "--executor",
            "mock",
        ],
        &["--mock-law"],
    );
    sweep(
        &["status", study, "--store", store, "--executor", "mock"],
        &["--mock-law"],
    );
    sweep(&["plan", study, "--executor", "mock"], &["--mock-law"]);
    let specs = dir.join("specs");
    check(&[
        "plan",
        "tests/fixtures/valid/golden.yaml",
        "--emit-specs",
        specs.to_str().unwrap(),
    ]);
    let spec = fs::read_dir(&specs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let out = dir.join("point");
    sweep(
        &[
            "train-point",
            "--spec",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &["--threads"],
    );
    let tiny = [
        "bench",
        "train",
        "--layers",
        "1",
        "--d-model",
        "8",
        "--heads",
        "2",
        "--context",
        "4",
        "--batch",
        "1",
        "--vocab",
        "16",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--peak-gflops",
        "100",
    ];
    // Later flags win in clap only for repeated options it allows; put the swept one first.
    for flag in [
        "--layers",
        "--d-model",
        "--heads",
        "--context",
        "--batch",
        "--vocab",
        "--steps",
        "--warmup",
        "--threads",
        "--peak-gflops",
    ] {
        for value in VALUES {
            let mut args: Vec<&str> = vec!["bench", "train", flag, value];
            let mut rest = tiny[2..].chunks(2).filter(|kv| kv[0] != flag);
            for kv in rest.by_ref() {
                args.extend(kv);
            }
            check(&args);
        }
    }
    let csv = dir.join("runs.csv");
    let mut table = String::from("Model Size,Training FLOP,loss\n");
    for (i, n) in [1e6, 2e6, 4e6, 8e6].iter().enumerate() {
        for (j, c) in [1e15, 4e15, 1.6e16].iter().enumerate() {
            table.push_str(&format!(
                "{n},{c},{}\n",
                2.0 + 1.0 / (1.0 + i as f64 + j as f64)
            ));
        }
    }
    fs::write(&csv, table).unwrap();
    sweep(
        &[
            "bench",
            "fit",
            "--csv",
            csv.to_str().unwrap(),
            "--bootstrap",
            "2",
        ],
        &["--drop-highest-loss", "--threads"],
    );
    sweep(
        &[
            "bench",
            "fit",
            "--csv",
            csv.to_str().unwrap(),
            "--threads",
            "1",
        ],
        &["--bootstrap"],
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_path_argument_of_the_wrong_kind_exits_cleanly() {
    let dir = fresh_dir("inputs-paths");
    let file = dir.join("a-file");
    fs::write(&file, "not a folder\n").unwrap();
    let binary = dir.join("binary.yaml");
    fs::write(&binary, [0u8, 159, 146, 150, 255, 0]).unwrap();
    let missing = dir.join("missing.yaml");
    let folder = dir.as_path();
    let study = Path::new("tests/fixtures/valid/tiny_sweep.yaml");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let bad_studies = [
        s(&file),
        s(&binary),
        s(&missing),
        s(folder),
        "/dev/null".to_string(),
    ];
    for bad in &bad_studies {
        for command in ["validate", "plan", "run", "fit", "report", "status"] {
            check(
                &[command, bad, "--executor", "mock"][..if command == "validate" { 2 } else { 4 }],
            );
        }
    }
    // A store or book that is a file, a spec that is not one, a table that is not one.
    let out = s(&dir.join("out"));
    for args in [
        vec![
            "run",
            study.to_str().unwrap(),
            "--executor",
            "mock",
            "--store",
            &bad_studies[0],
        ],
        vec![
            "status",
            study.to_str().unwrap(),
            "--store",
            &bad_studies[0],
        ],
        vec!["fit", study.to_str().unwrap(), "--store", &bad_studies[0]],
        vec!["report", study.to_str().unwrap(), "--book", &bad_studies[0]],
        vec![
            "plan",
            study.to_str().unwrap(),
            "--emit-specs",
            &bad_studies[0],
        ],
        vec!["train-point", "--spec", &bad_studies[0], "--out", &out],
        vec!["train-point", "--spec", &bad_studies[3], "--out", &out],
        vec!["train-point", "--spec", &bad_studies[1], "--out", &out],
        vec!["bench", "fit", "--csv", &bad_studies[0]],
        vec!["bench", "fit", "--csv", &bad_studies[3]],
    ] {
        check(&args);
    }
    fs::remove_dir_all(dir).unwrap();
}
