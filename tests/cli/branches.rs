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
                format!(
                    "{} {} {} {}",
                    p["step"], p["train_loss"], p["val_loss"], p["lr"]
                )
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
    trunk_trained_once_in(store, 2, 3);
}

/// [`trunk_trained_once`] for a store of `trunks` trunks with `branches` branches each (and
/// any independent runs, which are left alone).
fn trunk_trained_once_in(store: &Path, trunks: usize, branches: usize) {
    let mut by_trunk: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for entry in fs::read_dir(store.join("runs")).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(text) = fs::read_to_string(dir.join("result.json")) else {
            continue;
        };
        let r: Value = serde_json::from_str(&text).unwrap();
        if !r["spec"]["identity"]["branch"].is_null() {
            by_trunk.entry(branch(&r).0).or_default().push(r);
        }
    }
    assert_eq!(by_trunk.len(), trunks);
    assert!(by_trunk.values().all(|b| b.len() == branches));
    for (trunk, runs) in by_trunk {
        let last = runs.iter().map(|r| branch(r).1).max().unwrap();
        let decays: u64 = runs
            .iter()
            .map(|r| r["steps"].as_u64().unwrap() - branch(r).1)
            .sum();
        let spent: u64 = runs.iter().map(computed).sum();
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
    // The largest size trains first, its longest branch first: it trains the trunk, leaving
    // snapshots at the branch points 51, 102 and 205. Kill it once a periodic snapshot lies
    // between the last two.
    let deadline = Instant::now() + Duration::from_secs(300);
    while !snapshots(&store).iter().any(|(_, s)| *s > 102 && *s != 205) {
        assert!(
            Instant::now() < deadline,
            "no snapshot past step 102 in time"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before it was killed: {:?}",
            snapshots(&store)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(records(&store).len(), 0);
    let left: Vec<u64> = snapshots(&store).iter().map(|(_, s)| *s).collect();
    // One periodic snapshot at a time (each replaces the last), beside the branch points.
    assert!(left.contains(&51) && left.contains(&102), "{left:?}");
    assert!(left.len() <= 4, "{left:?}");
    let resume = left.iter().copied().filter(|s| *s <= 205).max().unwrap();
    assert!(resume > 102, "{resume}");

    let out = command(STUDY, &store).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = records(&store);
    // The trunk continued the newest snapshot, not step 0; the other branches started from
    // their branch points and trained only their decays.
    assert_eq!(
        computed(&after["l2-d64-t65536"]),
        (256 - resume) * STEP_TOKENS
    );
    assert_eq!(computed(&after["l2-d64-t16384"]), (64 - 51) * STEP_TOKENS);
    assert_eq!(computed(&after["l2-d64-t32768"]), (128 - 102) * STEP_TOKENS);
    for r in after.values() {
        assert_eq!(
            r["tokens_trained"].as_u64().unwrap(),
            r["steps"].as_u64().unwrap() * STEP_TOKENS
        );
    }
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
        let mut t: Vec<String> = fs::read_dir(store.join("runs"))
            .unwrap()
            .filter_map(|e| fs::read_to_string(e.unwrap().path().join("result.json")).ok())
            .map(|text| branch(&serde_json::from_str(&text).unwrap()).0)
            .collect();
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
    let out = scalebook(&["plan", STUDY, "--emit-specs", spec_dir.to_str().unwrap()]);
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

const COMPARE: &str = "tests/fixtures/valid/branches_compare.yaml";

/// The rows of the Markdown table that follows `marker` in `text`, as trimmed cells.
fn table_after(text: &str, marker: &str) -> Vec<Vec<String>> {
    let start = text.find(marker).unwrap_or_else(|| panic!("no `{marker}`"));
    text[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The chapter sets the law of the branched runs beside the law of the same grid trained as
/// independent cosine runs: each point's loss both ways, as recorded, within the stated
/// tolerance on this grid; each parameter agreeing or its difference stated; both costs.
#[test]
fn the_chapter_compares_branched_with_independent_runs() {
    let store = fresh_dir("branches-compare");
    let book = store.join("book");
    let out = scalebook(&[
        "run",
        COMPARE,
        "--store",
        store.to_str().unwrap(),
        "--book",
        book.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("6 runs and 6 independent runs to compare — 12 trained"),
        "{}",
        stderr(&out)
    );
    let chapter = fs::read_to_string(book.join("src/branches-compare/index.md")).unwrap();
    let section = &chapter[chapter
        .find("## Branched and independent runs")
        .expect("the comparison section")..];
    // Each point's loss both ways is the recorded one.
    let mut losses: BTreeMap<(String, bool), f64> = BTreeMap::new();
    for entry in fs::read_dir(store.join("runs")).unwrap() {
        let dir = entry.unwrap().path();
        let r: Value =
            serde_json::from_str(&fs::read_to_string(dir.join("result.json")).unwrap()).unwrap();
        let branched = !r["spec"]["identity"]["branch"].is_null();
        let schedule = r["spec"]["identity"]["train"]["schedule"]["kind"].clone();
        assert_eq!(schedule, if branched { "wsd" } else { "cosine" });
        let name = r["name"].as_str().unwrap().to_string();
        losses.insert((name, branched), r["val_loss"].as_f64().unwrap());
    }
    let points = table_after(section, "| point |");
    assert_eq!(points.len(), 6, "{section}");
    let mut worst: f64 = 0.0;
    for row in &points {
        let name = row[0].trim_matches('`').to_string();
        let (b, i) = (losses[&(name.clone(), true)], losses[&(name, false)]);
        assert_eq!(row[1], format!("{b:.4}"));
        assert_eq!(row[2], format!("{i:.4}"));
        worst = worst.max(((b - i) / i).abs());
    }
    assert!(worst <= 0.02, "largest difference {worst}");
    assert!(
        section.contains(&format!("the largest difference is {:.2} %", 100.0 * worst))
            && section.contains("within the 2.00 % tolerance"),
        "{section}"
    );
    // Every parameter of the law agrees or says by how much it does not.
    let params = table_after(section, "| law |");
    assert_eq!(params.len(), 3, "{section}");
    for row in &params {
        // The verdict follows from the numbers shown: each value inside the other's interval
        // (up to the rounding of what is shown) is "yes", clearly outside is "no".
        let cell = |text: &str| -> (f64, Option<[f64; 2]>) {
            let (value, ci) = text.split_once(' ').unwrap_or((text, "—"));
            let bounds: Vec<f64> = ci
                .trim_matches(|c| c == '[' || c == ']')
                .split(", ")
                .filter_map(|x| x.parse().ok())
                .collect();
            (
                value.parse().unwrap(),
                (bounds.len() == 2).then(|| [bounds[0], bounds[1]]),
            )
        };
        let ((b, b_ci), (i, i_ci)) = (cell(&row[2]), cell(&row[3]));
        let (Some(b_ci), Some(i_ci)) = (b_ci, i_ci) else {
            assert!(row[4].starts_with("no intervals; differs by"), "{row:?}");
            continue;
        };
        // Shown to 3 significant figures: a bound may be off by half a unit of its last digit.
        let slack = |ci: [f64; 2]| 5e-3 * ci[0].abs().max(ci[1].abs());
        let inside = |v: f64, ci: [f64; 2], s: f64| ci[0] - s <= v && v <= ci[1] + s;
        let (sb, si) = (slack(b_ci), slack(i_ci));
        if row[4] == "yes" {
            assert!(inside(b, i_ci, si) && inside(i, b_ci, sb), "{row:?}");
        } else {
            assert!(row[4].starts_with("**no**: differs by"), "{row:?}");
            assert!(!(inside(b, i_ci, -si) && inside(i, b_ci, -sb)), "{row:?}");
        }
    }
    // What each set cost, measured: the branched runs train a trunk once per size.
    assert!(section.contains("The branched runs cost"), "{section}");
    trunk_trained_once_in(&store, 2, 3);
    fs::remove_dir_all(store).unwrap();
}
