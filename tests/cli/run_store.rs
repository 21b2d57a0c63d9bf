//! `scalebook run` and `status` on a real store: caching, identity, corrupt entries, `kill -9`,
//! two processes at once, an unwritable store, and Parquet that other tools read.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use polars::prelude::*;
use serde_json::Value;

use crate::support::{fresh_dir, root, scalebook, stderr, stdout};

const SWEEP: &str = "tests/fixtures/valid/tiny_sweep.yaml";

fn temp(name: &str) -> PathBuf {
    fresh_dir(&format!("run-{name}"))
}

fn run(study: &str, store: &Path, extra: &[&str]) -> std::process::Output {
    // The report has its own tests (report.rs); these are about the store.
    let mut args = vec![
        "run",
        study,
        "--store",
        store.to_str().unwrap(),
        "--no-report",
    ];
    args.extend_from_slice(extra);
    scalebook(&args)
}

fn runs_frame(store: &Path, study: &str) -> DataFrame {
    let path = store.join("studies").join(study).join("runs.parquet");
    ParquetReader::new(fs::File::open(&path).unwrap())
        .finish()
        .unwrap()
}

/// The deterministic columns of runs.parquet (timings and memory differ run to run).
fn results(store: &Path, study: &str) -> Vec<(String, String, Option<f64>, Option<f64>)> {
    let df = runs_frame(store, study);
    let key = df.column("key").unwrap().str().unwrap().clone();
    let status = df.column("status").unwrap().str().unwrap().clone();
    let val = df.column("val_loss").unwrap().f64().unwrap().clone();
    let train = df.column("train_loss").unwrap().f64().unwrap().clone();
    let mut rows: Vec<_> = (0..df.height())
        .map(|i| {
            (
                key.get(i).unwrap().to_string(),
                status.get(i).unwrap().to_string(),
                val.get(i),
                train.get(i),
            )
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// Modification times of every finished entry's result.json.
fn result_mtimes(store: &Path) -> Vec<(String, std::time::SystemTime)> {
    let Ok(entries) = fs::read_dir(store.join("runs")) else {
        return Vec::new(); // the sweep has not created the store yet
    };
    let mut out: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.join("result.json").is_file()
                && !p.file_name().unwrap().to_string_lossy().starts_with('.')
        })
        .map(|p| {
            let t = fs::metadata(p.join("result.json"))
                .unwrap()
                .modified()
                .unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), t)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn mock_sweep_collects_parquet_and_caches_everything() {
    let store = temp("mock");
    let out = run(
        "tests/fixtures/valid/isoflop.yaml",
        &store,
        &["--executor", "mock"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("18 runs — 18 trained, 0 cached, 0 failed"),
        "{}",
        stderr(&out)
    );
    let df = runs_frame(&store, "isoflop");
    assert_eq!(df.height(), 18);
    for column in [
        "key",
        "name",
        "status",
        "layers",
        "d_model",
        "heads",
        "context",
        "params_total",
        "params_embedding",
        "params_non_embedding",
        "tokens",
        "flops",
        "flops_6nd",
        "val_loss",
        "best_val_loss",
        "train_loss",
        "wall_seconds",
        "tokens_per_second",
        "peak_rss_bytes",
        "seed",
        "budget",
    ] {
        assert!(df.column(column).is_ok(), "runs.parquet lacks {column}");
    }
    // The mock follows Chinchilla's law: bigger N at equal D has lower loss.
    let curves =
        ParquetReader::new(fs::File::open(store.join("studies/isoflop/curves.parquet")).unwrap())
            .finish()
            .unwrap();
    assert_eq!(
        curves
            .get_column_names()
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>(),
        vec![
            "key",
            "step",
            "tokens",
            "train_loss",
            "val_loss",
            "lr",
            "wall_seconds"
        ]
    );
    assert!(curves.height() >= 18 * 2);

    let again = run(
        "tests/fixtures/valid/isoflop.yaml",
        &store,
        &["--executor", "mock"],
    );
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stderr(&again).contains("0 trained, 18 cached"),
        "{}",
        stderr(&again)
    );
    fs::remove_dir_all(store).unwrap();
}

#[test]
fn presentation_edits_retrain_nothing_and_lr_edits_retrain_all() {
    let store = temp("identity");
    let dir = temp("identity-study");
    let base = fs::read_to_string(root().join(SWEEP)).unwrap();
    let study = dir.join("sweep.yaml");
    fs::write(&study, &base).unwrap();
    let study = study.to_str().unwrap();
    assert_eq!(
        run(study, &store, &["--executor", "mock"]).status.code(),
        Some(0)
    );
    fs::write(
        dir.join("sweep.yaml"),
        base.replace("title: Tiny sweep", "title: Renamed").replace(
            "{ layers: 1, d_model: 16, heads: 2 }",
            "{ layers: 1, d_model: 16, heads: 2, name: smallest }",
        ) + "report:\n  sections:\n    - text: new words\n",
    )
    .unwrap();
    let out = run(study, &store, &["--executor", "mock"]);
    assert!(
        stderr(&out).contains("0 trained, 6 cached"),
        "{}",
        stderr(&out)
    );
    fs::write(dir.join("sweep.yaml"), base.replace("lr: 3e-3", "lr: 2e-3")).unwrap();
    let out = run(study, &store, &["--executor", "mock"]);
    assert!(
        stderr(&out).contains("6 trained, 0 cached"),
        "{}",
        stderr(&out)
    );
    fs::remove_dir_all(store).unwrap();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn corrupt_entries_are_reported_and_retrained() {
    let store = temp("corrupt");
    assert_eq!(
        run(SWEEP, &store, &["--executor", "mock"]).status.code(),
        Some(0)
    );
    let mut entries: Vec<PathBuf> = fs::read_dir(store.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    // Damage five of the six entries, each in another part; the sixth stays whole.
    let truncated = &entries[0];
    let text = fs::read_to_string(truncated.join("result.json")).unwrap();
    fs::write(truncated.join("result.json"), &text[..text.len() / 2]).unwrap();
    fs::remove_file(entries[1].join("curve.jsonl")).unwrap();
    let curve = fs::read_to_string(entries[2].join("curve.jsonl")).unwrap();
    fs::write(entries[2].join("curve.jsonl"), &curve[..curve.len() - 7]).unwrap();
    let edit = |file: &Path, change: &dyn Fn(&mut Value)| {
        let mut value: Value = serde_json::from_str(&fs::read_to_string(file).unwrap()).unwrap();
        change(&mut value);
        fs::write(file, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    };
    edit(&entries[3].join("result.json"), &|v| {
        v["spec"]["identity"]["seed"] = Value::from(99)
    });
    edit(&entries[4].join("spec.json"), &|v| {
        v["identity"]["train"]["lr"] = Value::from(0.5)
    });
    let status = scalebook(&[
        "status",
        "--executor",
        "mock",
        SWEEP,
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let rows: Vec<Value> = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows.iter().filter(|r| r["state"] == "corrupt").count(), 5);
    // `fit` reads through the same reader: the damaged entries are named, not fitted.
    let fit = scalebook(&[
        "fit",
        SWEEP,
        "--executor",
        "mock",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert!(
        stderr(&fit)
            .matches("not fitted (`scalebook run` retrains it)")
            .count()
            == 5,
        "{}",
        stderr(&fit)
    );
    let out = run(SWEEP, &store, &["--executor", "mock"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let name = |i: usize| {
        entries[i]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    for (i, why) in [
        (0, "result.json is not a run record"),
        (1, "curve.jsonl is missing"),
        (2, "curve.jsonl ends mid-line (truncated)"),
        (
            3,
            "result.json: the spec's identity does not hash to its key",
        ),
        (4, "spec.json: the spec's identity does not hash to its key"),
    ] {
        assert!(
            err.contains(&format!("warning: {}: {why}", name(i))),
            "{why}: {err}"
        );
    }
    assert!(err.contains("5 trained, 1 cached"), "{err}");
    // After retraining, every entry reads back whole.
    let status = scalebook(&[
        "status",
        "--executor",
        "mock",
        SWEEP,
        "--store",
        store.to_str().unwrap(),
    ]);
    assert!(
        stdout(&status).contains("6 runs: 6 done"),
        "{}",
        stdout(&status)
    );
    fs::remove_dir_all(store).unwrap();
}

/// Mock records never pass for trained ones: the producer is part of a run's key, so a real
/// `run` on a store the mock filled trains everything, and the mock's records stay its own.
#[test]
fn a_real_run_never_reuses_mock_records() {
    let store = temp("mock-then-real");
    let out = run(SWEEP, &store, &["--executor", "mock"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("MOCK DATA"), "{}", stderr(&out));
    let out = run(SWEEP, &store, &["--jobs", "2", "--threads-per-job", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("6 runs — 6 trained, 0 cached"), "{err}");
    assert!(!err.contains("MOCK"), "{err}");
    // Both sets are in the store, each under its own producer.
    assert_eq!(fs::read_dir(store.join("runs")).unwrap().count(), 12);
    let mock = scalebook(&[
        "status",
        SWEEP,
        "--executor",
        "mock",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert!(
        stdout(&mock)
            .contains("MOCK DATA (the mock executor's law, nothing trained): 6 runs: 6 done"),
        "{}",
        stdout(&mock)
    );
    // Another law is another producer: nothing cached.
    let out = run(
        SWEEP,
        &store,
        &["--executor", "mock", "--mock-law", "1,400,400,0.3,0.3"],
    );
    assert!(
        stderr(&out).contains("6 trained, 0 cached"),
        "{}",
        stderr(&out)
    );
    fs::remove_dir_all(store).unwrap();
}

/// `kill -9` mid-sweep, then run again: finished runs are reused, the rest trained, and the
/// collected results equal an uninterrupted sweep's.
#[test]
fn kill_9_mid_sweep_loses_nothing() {
    let store = temp("kill");
    let args = ["--jobs", "1", "--threads-per-job", "1"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_scalebook"))
        .args([
            "run",
            SWEEP,
            "--store",
            store.to_str().unwrap(),
            "--no-report",
        ])
        .args(args)
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while result_mtimes(&store).len() < 2 {
        assert!(Instant::now() < deadline, "no run finished in time");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let finished = result_mtimes(&store);
    assert!(finished.len() >= 2 && finished.len() < 6, "{finished:?}");
    // The killed sweep's training child dies with it (no orphan keeps writing).
    std::thread::sleep(Duration::from_millis(300));
    let partials: Vec<_> = fs::read_dir(store.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".partial-"))
        .collect();
    let status = scalebook(&[
        "status",
        SWEEP,
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let rows: Vec<Value> = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        rows.iter().filter(|r| r["state"] == "running").count(),
        0,
        "stale lock: {rows:?}"
    );
    assert!(partials.len() <= 1, "{partials:?}");

    let out = run(SWEEP, &store, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{} of 6 runs already in the store",
            finished.len()
        )),
        "{}",
        stderr(&out)
    );
    // Entries finished before the kill were not retrained.
    let after = result_mtimes(&store);
    for entry in &finished {
        assert!(after.contains(entry), "{} was retrained", entry.0);
    }
    assert_eq!(after.len(), 6);
    assert!(!fs::read_dir(store.join("runs")).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".partial-")
    }));

    let fresh = temp("kill-fresh");
    assert_eq!(run(SWEEP, &fresh, &args).status.code(), Some(0));
    assert_eq!(results(&store, "tiny-sweep"), results(&fresh, "tiny-sweep"));
    fs::remove_dir_all(store).unwrap();
    fs::remove_dir_all(fresh).unwrap();
}

#[test]
fn two_concurrent_sweeps_train_each_key_once() {
    let store = temp("concurrent");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_scalebook"))
            .args([
                "run",
                SWEEP,
                "--store",
                store.to_str().unwrap(),
                "--no-report",
                "--jobs",
                "1",
                "--threads-per-job",
                "1",
            ])
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn();
    let b = spawn();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    assert_eq!(b.status.code(), Some(0), "{}", stderr(&b));
    let started = |o: &std::process::Output| -> Vec<String> {
        stderr(o)
            .lines()
            .filter_map(|l| l.strip_prefix("start "))
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect()
    };
    let mut all: Vec<String> = started(&a).into_iter().chain(started(&b)).collect();
    all.sort();
    let mut unique = all.clone();
    unique.dedup();
    assert_eq!(
        all,
        unique,
        "a key was trained twice:\n{}\n{}",
        stderr(&a),
        stderr(&b)
    );
    assert_eq!(all.len(), 6);
    fs::remove_dir_all(store).unwrap();
}

#[test]
fn an_unwritable_store_exits_1_and_keeps_finished_entries() {
    let dir = temp("unwritable");
    let blocker = dir.join("not-a-folder");
    fs::write(&blocker, "a file where the store should be").unwrap();
    let out = run(SWEEP, &blocker.join("store"), &["--executor", "mock"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot use the run store"),
        "{}",
        stderr(&out)
    );

    // A store that becomes read-only for new entries mid-way: finished entries stay intact.
    let store = dir.join("store");
    assert_eq!(
        run(SWEEP, &store, &["--executor", "mock"]).status.code(),
        Some(0)
    );
    let before = result_mtimes(&store);
    fs::remove_dir_all(store.join("locks")).unwrap();
    fs::write(store.join("locks"), "blocked").unwrap();
    let edited = dir.join("edited.yaml");
    fs::write(
        &edited,
        fs::read_to_string(root().join(SWEEP))
            .unwrap()
            .replace("seed: 2", "seed: 3"),
    )
    .unwrap();
    let out = run(edited.to_str().unwrap(), &store, &["--executor", "mock"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("finished runs are intact")
            || stderr(&out).contains("cannot use the run store"),
        "{}",
        stderr(&out)
    );
    assert_eq!(result_mtimes(&store), before);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn status_names_each_state() {
    let store = temp("status");
    let out = scalebook(&["status", SWEEP, "--store", store.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("6 runs: 0 done, 6 missing"),
        "{}",
        stdout(&out)
    );
    let hot = temp("status-hot");
    let study = hot.join("hot.yaml");
    fs::write(
        &study,
        fs::read_to_string(root().join(SWEEP))
            .unwrap()
            .replace("lr: 3e-3, warmup: 0.2", "lr: 1.0, warmup: 0, grad_clip: 0"),
    )
    .unwrap();
    let out = run(
        study.to_str().unwrap(),
        &store,
        &["--jobs", "2", "--threads-per-job", "1"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("failed: l1-d16-t8192: run l1-d16-t8192: training loss"),
        "{}",
        stderr(&out)
    );
    let status = scalebook(&[
        "status",
        study.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let rows: Vec<Value> = serde_json::from_slice(&status.stdout).unwrap();
    assert!(rows.iter().all(|r| r["state"] == "diverged"), "{rows:?}");
    let reason = rows[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("stayed above its initial")
            || reason.contains("did not return below its initial")
            || reason.contains("training loss became"),
        "{reason}"
    );
    // Recorded failures are not retried unless asked.
    let again = run(
        study.to_str().unwrap(),
        &store,
        &["--jobs", "2", "--threads-per-job", "1"],
    );
    assert_eq!(again.status.code(), Some(3));
    assert!(!stderr(&again).contains("start "), "{}", stderr(&again));
    fs::remove_dir_all(store).unwrap();
    fs::remove_dir_all(hot).unwrap();
}

/// Other tools read the Parquet files: pyarrow (installed by .ci/run) checks columns and rows.
#[test]
fn pyarrow_reads_the_collected_results() {
    let probe = Command::new("python3")
        .args(["-c", "import pyarrow"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        scalebook::testing::skip(
            "pyarrow_reads_the_collected_results",
            "python3 with pyarrow is not installed (.ci/run installs it)",
        );
        return;
    }
    let store = temp("pyarrow");
    assert_eq!(
        run(SWEEP, &store, &["--executor", "mock"]).status.code(),
        Some(0)
    );
    let script = "import sys, pyarrow.parquet as pq\n\
        t = pq.read_table(sys.argv[1])\n\
        assert t.num_rows == 6, t.num_rows\n\
        need = {'key','name','status','params_total','params_non_embedding','tokens','flops','val_loss','wall_seconds'}\n\
        assert need <= set(t.column_names), set(t.column_names) ^ need\n\
        assert all(v > 0 for v in t.column('val_loss').to_pylist())\n\
        c = pq.read_table(sys.argv[2])\n\
        assert set(c.column('key').to_pylist()) == set(t.column('key').to_pylist())\n\
        print('pyarrow ok', t.num_rows, c.num_rows)\n";
    let dir = store.join("studies/tiny-sweep");
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(dir.join("runs.parquet"))
        .arg(dir.join("curves.parquet"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pyarrow ok 6 "));
    fs::remove_dir_all(store).unwrap();
}

/// The fits know the data's entropy rate from the runs the engine trained (so warnings can
/// compare E with it), and claim none for mock runs, whose numbers come from the mock's law.
#[test]
fn fits_compare_with_the_entropy_of_trained_data_only() {
    let dir = temp("entropy");
    let study = dir.join("sweep.yaml");
    let text = fs::read_to_string(root().join(SWEEP)).unwrap()
        + "fits:\n  - { law: chinchilla, bootstrap: 10, grid: coarse }\n";
    fs::write(&study, text).unwrap();
    let fits_of = |store: &Path| -> Value {
        serde_json::from_str(
            &fs::read_to_string(store.join("studies/tiny-sweep/fits.json")).unwrap(),
        )
        .unwrap()
    };
    let real = dir.join("real");
    let out = run(study.to_str().unwrap(), &real, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let recorded: Value = serde_json::from_str(
        &fs::read_to_string(
            fs::read_dir(real.join("runs"))
                .unwrap()
                .flatten()
                .find(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .unwrap()
                .path()
                .join("result.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let fits = fits_of(&real);
    assert_eq!(fits["entropy"][0], recorded["data_entropy_nats"]);
    assert!(fits["entropy"][0].as_f64().unwrap() > 1.0);
    let mock = dir.join("mock");
    let out = run(study.to_str().unwrap(), &mock, &["--executor", "mock"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(fits_of(&mock)["entropy"].is_null());
    fs::remove_dir_all(dir).unwrap();
}
