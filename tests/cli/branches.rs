//! Shared WSD trunks on a real store: a `kill -9` mid-trunk resumes from the last snapshot to
//! the same bits, two `run`s never train a trunk twice, and a trunk whose learning rate
//! changed retrains its branches.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{fresh_dir, root, scalebook, stderr};

const STUDY: &str = "tests/fixtures/valid/branches.yaml";
/// Tokens per step of the fixture (batch 8 × context 32).
const STEP_TOKENS: u64 = 256;

fn command(study: &str, store: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scalebook"));
    c.args(["run", study, "--store", store.to_str().unwrap()])
        .args(["--no-report", "--jobs", "1", "--threads-per-job", "1"])
        .current_dir(root())
        .env("SCALEBOOK_SNAPSHOT_SECONDS", "0.1");
    c
}

/// Every record's result, by run name.
fn records(store: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(store.join("runs")).unwrap() {
        let dir = entry.unwrap().path();
        if let Ok(text) = fs::read_to_string(dir.join("result.json")) {
            let r: Value = serde_json::from_str(&text).unwrap();
            out.insert(r["name"].as_str().unwrap().to_string(), r);
        }
    }
    out
}

/// Each run's curve without its timings: (step, train loss, val loss, lr) as written.
fn curves(store: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(store.join("runs")).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(text) = fs::read_to_string(dir.join("curve.jsonl")) else {
            continue;
        };
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let points = text
            .lines()
            .map(|l| {
                let p: Value = serde_json::from_str(l).unwrap();
                format!("{} {} {} {}", p["step"], p["train_loss"], p["val_loss"], p["lr"])
            })
            .collect();
        out.insert(name, points);
    }
    out
}

/// Snapshot steps of every trunk in the store.
fn snapshots(store: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for trunk in fs::read_dir(store.join("trunks")).into_iter().flatten() {
        let trunk = trunk.unwrap();
        let key = trunk.file_name().to_string_lossy().into_owned();
        for f in fs::read_dir(trunk.path()).into_iter().flatten() {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            if let Some(step) = name
                .strip_prefix("step-")
                .and_then(|n| n.strip_suffix(".snap"))
            {
                out.push((key.clone(), step.parse().unwrap()));
            }
        }
    }
    out
}

fn branch(r: &Value) -> (String, u64) {
    let b = &r["spec"]["identity"]["branch"];
    (
        b["trunk"].as_str().unwrap().to_string(),
        b["decay_start"].as_u64().unwrap(),
    )
}

/// Tokens a record trained itself (the whole run when it continued no snapshot).
fn computed(r: &Value) -> u64 {
    r["computed_tokens"]
        .as_u64()
        .unwrap_or(r["tokens_trained"].as_u64().unwrap())
}

/// Trained once, each trunk costs its steps to the last branch point plus every decay.
fn trunk_trained_once(store: &Path) {
    let mut by_trunk: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    let records = records(store);
    for r in records.values() {
        by_trunk.entry(branch(r).0).or_default().push(r);
    }
    assert_eq!(by_trunk.len(), 2);
    for (trunk, runs) in by_trunk {
        let last = runs.iter().map(|r| branch(r).1).max().unwrap();
        let decays: u64 = runs
            .iter()
            .map(|r| r["steps"].as_u64().unwrap() - branch(r).1)
            .sum();
        let spent: u64 = runs.iter().map(|r| computed(r)).sum();
        assert_eq!(spent, (last + decays) * STEP_TOKENS, "trunk {trunk}");
    }
}

#[test]
fn a_trunk_killed_mid_way_resumes_to_the_same_bits() {
    let store = fresh_dir("branches-kill");
    let mut child = command(STUDY, &store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The largest size trains first; its branch points are steps 51, 102 and 205. Kill it
    // once a periodic snapshot lies between the last two.
    let deadline = Instant::now() + Duration::from_secs(300);
    while !snapshots(&store)
        .iter()
        .any(|(_, s)| *s > 102 && *s != 205)
    {
        assert!(Instant::now() < deadline, "no snapshot past step 102 in time");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before it was killed: {:?}",
            snapshots(&store)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = records(&store);
    assert_eq!(before.len(), 2, "{:?}", before.keys());
    let resume = snapshots(&store)
        .iter()
        .map(|(_, s)| *s)
        .filter(|s| *s <= 205)
        .max()
        .unwrap();
    assert!(resume > 102, "{resume}");

    let out = command(STUDY, &store).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("2 of 6 runs already in the store"));
    let after = records(&store);
    // The interrupted branch continued the snapshot, not step 0 or the last branch point.
    let longest = &after["l2-d64-t65536"];
    assert_eq!(computed(longest), (256 - resume) * STEP_TOKENS);
    assert_eq!(
        longest["tokens_trained"].as_u64().unwrap(),
        256 * STEP_TOKENS
    );
    // Every trunk's snapshots are gone once its branches are done.
    assert_eq!(snapshots(&store), Vec::new());

    let fresh = fresh_dir("branches-fresh");
    let out = command(STUDY, &fresh).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(curves(&store), curves(&fresh));
    trunk_trained_once(&fresh);
    fs::remove_dir_all(store).unwrap();
    fs::remove_dir_all(fresh).unwrap();
}

#[test]
fn two_runs_at_once_train_each_trunk_once() {
    let store = fresh_dir("branches-concurrent");
    let spawn = || {
        command(STUDY, &store)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    assert_eq!(b.status.code(), Some(0), "{}", stderr(&b));
    assert_eq!(records(&store).len(), 6);
    trunk_trained_once(&store);
    fs::remove_dir_all(store).unwrap();
}

#[test]
fn a_trunk_with_another_learning_rate_retrains_its_branches() {
    let store = fresh_dir("branches-lr");
    let out = command(STUDY, &store).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let trunks = |store: &Path| -> Vec<String> {
        let mut t: Vec<String> = records(store).values().map(|r| branch(r).0).collect();
        t.sort();
        t.dedup();
        t
    };
    let first = trunks(&store);
    let edited = store.join("edited.yaml");
    let text = fs::read_to_string(root().join(STUDY)).unwrap();
    fs::write(&edited, text.replace("lr: 1e-2", "lr: 5e-3")).unwrap();
    let out = command(edited.to_str().unwrap(), &store).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("6 trained, 0 cached"),
        "{}",
        stderr(&out)
    );
    let all = trunks(&store);
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(first.iter().all(|t| all.contains(t)));
    // `train-point` refuses a branch whose identity was edited (its key no longer matches).
    let spec_dir: PathBuf = fresh_dir("branches-spec");
    let out = scalebook(&[
        "plan",
        STUDY,
        "--emit-specs",
        spec_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let path = fs::read_dir(&spec_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".json"))
        .unwrap();
    let mut spec: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    spec["identity"]["branch"]["decay_start"] = Value::from(1);
    fs::write(&path, spec.to_string()).unwrap();
    let out = scalebook(&[
        "train-point",
        "--spec",
        path.to_str().unwrap(),
        "--out",
        spec_dir.join("out").to_str().unwrap(),
        "--trunks",
        store.join("trunks").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not match"), "{}", stderr(&out));
    fs::remove_dir_all(store).unwrap();
    fs::remove_dir_all(spec_dir).unwrap();
}
