//! `scalebook verify` and `scalebook diff` on published results: the repository's own
//! published studies verify; every kind of tampering is caught with exit 5 naming it;
//! re-training with another thread count is identical, on another instruction-set path
//! within tolerance; `diff` compares versions; bad input exits 2.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{fresh_dir, root, scalebook, stderr, stdout};

/// Copy a tree, leaving out what a published store ignores.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if ["locks", "calibration"].contains(&name.as_str()) || name.ends_with(".parquet") {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if src.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// The published quickstart — study file, results and chapter — copied into `dir`.
fn published_quickstart(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir.join("reports")).unwrap();
    fs::copy(
        root().join("reports/quickstart.yaml"),
        dir.join("reports/quickstart.yaml"),
    )
    .unwrap();
    copy_tree(
        &root().join("reports/quickstart"),
        &dir.join("reports/quickstart"),
    );
    copy_tree(
        &root().join("book/src/quickstart"),
        &dir.join("book/src/quickstart"),
    );
    dir.join("reports/quickstart.yaml")
}

fn verify(study: &Path, book: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "verify",
        study.to_str().unwrap(),
        "--book",
        book.to_str().unwrap(),
    ];
    args.extend(extra);
    scalebook(&args)
}

/// CI's gate on the repository's book: each published study's records read back and belong
/// to it, `fits.json` is what they fit to, and the committed chapter is byte for byte what
/// they render (a stale or hand-edited chapter fails here).
#[test]
fn published_studies_verify_against_their_committed_chapters() {
    // Every study file in reports/ is published with its records and chapter.
    let mut studies: Vec<String> = fs::read_dir(root().join("reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .map(|name| format!("reports/{name}"))
        .collect();
    studies.sort();
    assert!(studies.len() >= 3, "{studies:?}");
    for study in &studies {
        if let Some(why) = crate::support::corpus_missing(&root().join(study)) {
            scalebook::testing::skip(
                &format!("published_studies_verify_against_their_committed_chapters ({study})"),
                &format!("{why} (.ci/run installs the corpus)"),
            );
            continue;
        }
        let out = scalebook(&["verify", study, "--sample", "0"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{study} does not verify: re-run `scalebook run {study}` and commit its results and \
             chapter\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stdout(&out).contains(": ok — "), "{}", stdout(&out));
    }
}

fn edit_json(path: &Path, change: &dyn Fn(&mut Value)) {
    let mut v: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    change(&mut v);
    fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// The entry folder of run `name` in a copied store.
fn entry(dir: &Path, name: &str) -> PathBuf {
    fs::read_dir(dir.join("reports/quickstart/runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            f.starts_with(&format!("{name}-")) && f.len() == name.len() + 13
        })
        .unwrap()
}

/// Mark run `name`'s record as made on this machine's instruction-set path: the published
/// records were made on one path, and a test of what verify says about "the same path" must
/// not depend on the path of the machine it runs on. Returns whether the record changed (the
/// chapter's appendix, which names the paths, then no longer matches).
fn as_if_recorded_here(dir: &Path, name: &str) -> bool {
    let path = entry(dir, name).join("result.json");
    let here = scalebook::isa::path();
    let v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    if v["isa"].as_str() == Some(here.as_str()) {
        return false;
    }
    edit_json(&path, &|v| v["isa"] = Value::from(here.clone()));
    true
}

#[test]
fn every_kind_of_tampering_is_caught() {
    let run = "l2-d12-t1.6e5";
    let untouched = fresh_dir("verify-untouched");
    let study = published_quickstart(&untouched);
    let out = verify(&study, &untouched.join("book"), &["--sample", "0"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    fs::remove_dir_all(&untouched).unwrap();
    type Tamper = fn(&Path);
    let tampers: [(&str, Tamper, &[&str], &str); 5] = [
        (
            "a recorded loss",
            |d| {
                edit_json(&entry(d, "l2-d12-t1.6e5").join("result.json"), &|v| {
                    v["val_loss"] = Value::from(v["val_loss"].as_f64().unwrap() * 1.01)
                })
            },
            &["--sample", "0"],
            "the records are not the ones fits.json was computed from",
        ),
        (
            "a curve point",
            |d| {
                as_if_recorded_here(d, "l2-d12-t1.6e5");
                let path = entry(d, "l2-d12-t1.6e5").join("curve.jsonl");
                let text = fs::read_to_string(&path).unwrap();
                let first = text.lines().next().unwrap().to_string();
                let mut p: Value = serde_json::from_str(&first).unwrap();
                p["train_loss"] = Value::from(p["train_loss"].as_f64().unwrap() * 0.99);
                fs::write(&path, text.replacen(&first, &p.to_string(), 1)).unwrap();
            },
            &["--runs", "l2-d12-t1.6e5"],
            "retrain l2-d12-t1.6e5: same CPU and instruction-set path but other numbers",
        ),
        (
            "a fitted parameter",
            |d| {
                edit_json(
                    &d.join("reports/quickstart/studies/quickstart/fits.json"),
                    &|v| v["chinchilla"]["alpha"] = Value::from(0.5),
                )
            },
            &["--sample", "0"],
            "chinchilla.alpha: recorded 0.5",
        ),
        (
            "a number in the chapter",
            |d| {
                let path = d.join("book/src/quickstart/index.md");
                let text = fs::read_to_string(&path).unwrap();
                let at = text
                    .find("| `l2-d12-t1.6e5` |")
                    .expect("the runs table lists the run");
                let line_end = at + text[at..].find('\n').unwrap();
                let line = &text[at..line_end];
                let digit = line.rfind(|c: char| c.is_ascii_digit()).unwrap();
                let mut edited = line.to_string();
                let d0 = line.as_bytes()[digit];
                edited.replace_range(digit..digit + 1, if d0 == b'9' { "8" } else { "9" });
                fs::write(&path, text.replacen(line, &edited, 1)).unwrap();
            },
            &["--sample", "0"],
            "chapter index.md: line",
        ),
        (
            "a spec field",
            |d| {
                edit_json(&entry(d, "l2-d12-t1.6e5").join("result.json"), &|v| {
                    v["spec"]["identity"]["train"]["lr"] = Value::from(0.5)
                })
            },
            &["--sample", "0"],
            "integrity l2-d12-t1.6e5: result.json: the spec's identity does not hash to its key",
        ),
    ];
    for (what, tamper, extra, named) in tampers {
        let dir = fresh_dir("verify-tampered");
        let study = published_quickstart(&dir);
        tamper(&dir);
        let out = verify(&study, &dir.join("book"), extra);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(5), "{what}: {}{err}", stdout(&out));
        assert!(err.contains(named), "{what} not named ({named}):\n{err}");
        assert!(
            err.contains(run) || what.contains("fitted") || what.contains("loss"),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}

/// The engine's bits do not depend on the thread count: re-trained with two threads, a run
/// recorded with one is identical. Recorded on another instruction-set path, it is judged
/// within tolerance, with the difference measured — neither identical nor a failure.
#[test]
fn retraining_is_identical_across_threads_and_within_tolerance_across_paths() {
    let dir = fresh_dir("verify-retrain");
    let study = published_quickstart(&dir);
    let run = "l2-d12-t1.6e5";
    // Recorded on this machine's path (else the chapter, which names the paths, compares).
    let book = if as_if_recorded_here(&dir, run) {
        dir.join("no-book")
    } else {
        dir.join("book")
    };
    let out = verify(&study, &book, &["--runs", run, "--threads", "2"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains(&format!("identical        {run}")), "{text}");
    assert!(
        text.contains("recorded with 1 thread(s), re-trained with 2"),
        "{text}"
    );
    // A record made on another instruction-set path of the same CPU model (the chapter's
    // appendix names the paths, so compare no chapter here; another CPU model would move
    // the cost law, which flags a mix of machines).
    edit_json(&entry(&dir, run).join("result.json"), &|v| {
        v["isa"] = Value::from("x86_64-another-path");
    });
    let out = verify(&study, &dir.join("no-book"), &["--runs", run]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains(&format!("within tolerance {run}")), "{text}");
    assert!(
        text.contains("largest relative difference 0.000e0"),
        "{text}"
    );
    assert!(
        text.contains("not checked"),
        "the missing chapter is said: {text}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn diff_compares_versions_and_refuses_bad_input() {
    let dir = fresh_dir("diff");
    let (a, b) = (dir.join("a/q.yaml"), dir.join("b/q.yaml"));
    let text = fs::read_to_string(root().join("reports/quickstart.yaml")).unwrap();
    for (path, text) in [
        (&a, text.clone()),
        (&b, text.replace("lr: 1.5e-2", "lr: 2e-2")),
    ] {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        let out = scalebook(&[
            "run",
            path.to_str().unwrap(),
            "--executor",
            "mock",
            "--no-report",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let same = scalebook(&["diff", a, a, "--executor", "mock"]);
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    assert!(
        stdout(&same)
            .contains("0 runs changed, 0 added, 0 removed, 14 the same; no fitted number moved"),
        "{}",
        stdout(&same)
    );
    let out = scalebook(&["diff", a, b, "--executor", "mock", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let d: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let grid: Vec<&Value> = d["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"].as_str().unwrap().contains("-t"))
        .collect();
    assert_eq!(grid.len(), 12);
    for r in grid {
        assert_eq!(r["change"], "changed", "{r}");
        assert!(
            r["fields"]
                .as_array()
                .unwrap()
                .contains(&Value::from("train.lr")),
            "{r}"
        );
        assert!(r["loss_a"].as_f64().unwrap() != r["loss_b"].as_f64().unwrap());
    }
    let alpha = d["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "chinchilla α")
        .unwrap();
    assert!(
        alpha["a"] != alpha["b"] && alpha["overlap"].is_boolean(),
        "{alpha}"
    );
    let md = stdout(&scalebook(&[
        "diff",
        a,
        b,
        "--executor",
        "mock",
        "--format",
        "md",
    ]));
    assert!(md.starts_with("### scalebook diff\n\n"), "{md}");
    assert!(
        md.contains("| fitted number | before | after | intervals overlap |"),
        "{md}"
    );
    // The study's six checks on both sides (on mock numbers, not all of them pass).
    assert!(md.contains("\nChecks: "), "{md}");
    assert!(
        md.contains(" of 6 passed"),
        "the study's checks on both sides: {md}"
    );
    // Bad input: exit 2 with one line naming it.
    let folder = dir.to_str().unwrap();
    for (args, says) in [
        (
            vec!["diff", folder, a],
            "not a study file, STUDY@REV or a results folder",
        ),
        (
            vec!["diff", "reports/quickstart.yaml@no-such-rev", a],
            "the revision `no-such-rev` does not exist",
        ),
        (
            vec![
                "verify",
                a,
                "--store",
                &dir.join("a/quickstart").to_string_lossy(),
            ],
            "holds no record of the 12 runs",
        ),
    ] {
        let out = scalebook(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
    fs::remove_dir_all(dir).unwrap();
}

/// A damaged published record is evidence: `run` reports it (exit 5) and leaves it as it is,
/// never training over it.
#[test]
fn run_never_retrains_a_damaged_published_record() {
    let dir = fresh_dir("verify-damaged");
    let study = published_quickstart(&dir);
    let result = entry(&dir, "l2-d12-t1.6e5").join("result.json");
    let text = fs::read_to_string(&result).unwrap();
    fs::write(&result, &text[..text.len() / 2]).unwrap();
    let out = scalebook(&["run", study.to_str().unwrap(), "--no-report"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("published record damaged: result.json is not a run record"),
        "{err}"
    );
    assert!(err.contains("restore them from version control"), "{err}");
    assert!(
        !err.contains("start l2-d12-t1.6e5"),
        "nothing trained: {err}"
    );
    assert_eq!(fs::read_to_string(&result).unwrap(), text[..text.len() / 2]);
    // No spelling of the published store makes it an ordinary one: absolute, `./`, `..`,
    // through a symlink, and from another working directory.
    let own = dir.join("reports/quickstart");
    std::os::unix::fs::symlink(&own, dir.join("linked")).unwrap();
    fs::create_dir_all(dir.join("elsewhere")).unwrap();
    let spellings: [(&Path, String); 5] = [
        (&dir, own.display().to_string()),
        (&dir, "./reports/quickstart".into()),
        (&dir, "reports/../reports/quickstart/".into()),
        (&dir, "linked".into()),
        (&dir.join("elsewhere"), "../reports/quickstart".into()),
    ];
    for (cwd, store) in &spellings {
        let out = crate::support::scalebook_in(
            cwd,
            &[
                "run",
                study.to_str().unwrap(),
                "--store",
                store,
                "--no-report",
            ],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(5), "--store {store}: {err}");
        assert!(!err.contains("retraining"), "--store {store}: {err}");
        assert_eq!(
            fs::read_to_string(&result).unwrap(),
            text[..text.len() / 2],
            "--store {store} replaced the record"
        );
    }
    fs::remove_dir_all(&dir).unwrap();
}
