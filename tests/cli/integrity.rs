//! Integrity of what `report` publishes and how commands read their input: a chapter from an
//! incomplete store carries the warning, a broken link publishes nothing, reports into one
//! book at once do not collide, and a study named by its bare file name works everywhere.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::support::{assert_no_crash, fresh_dir, root, scalebook, scalebook_in, stderr};

const STUDY: &str = "tests/fixtures/valid/report_mock.yaml";

fn mock(args: &[&str], study: &Path, dir: &Path) -> std::process::Output {
    let (store, book) = (dir.join("store"), dir.join("book"));
    let mut all = vec![args[0], study.to_str().unwrap()];
    all.extend(&args[1..]);
    all.extend(["--executor", "mock", "--store", store.to_str().unwrap()]);
    if ["run", "report"].contains(&args[0]) {
        all.extend(["--book", book.to_str().unwrap()]);
    }
    scalebook(&all)
}

fn fits(dir: &Path, study: &str) -> Value {
    let text = fs::read_to_string(dir.join(format!("store/studies/{study}/fits.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The entry folder of run `name` in `dir`'s store.
fn entry(dir: &Path, name: &str) -> std::path::PathBuf {
    fs::read_dir(dir.join("store/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            f.starts_with(&format!("{name}-")) && f.len() == name.len() + 13
        })
        .unwrap_or_else(|| panic!("no entry {name}"))
}

/// A chapter from a store that lacks planned runs, or holds unreadable ones, opens with
/// that warning — which runs, and what the law lost — and `checks:` can gate on it.
#[test]
fn a_chapter_from_an_incomplete_store_says_so() {
    let dir = fresh_dir("incomplete-store");
    let study = root().join(STUDY);
    let out = mock(&["run", "--no-report"], &study, &dir);
    assert!(out.status.success(), "{}", stderr(&out));
    // The largest size's largest run gone, another one's record damaged.
    fs::remove_dir_all(entry(&dir, "l4-d96-t1e5")).unwrap();
    let damaged = entry(&dir, "l1-d16-t2e4").join("result.json");
    fs::write(&damaged, "{ cut off").unwrap();
    let out = mock(&["report"], &study, &dir);
    assert_no_crash(&stderr(&out), &study);
    let f = fits(&dir, "report-mock");
    let codes: Vec<&str> = f["warning_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(codes.contains(&"runs_missing"), "{codes:?}");
    assert!(codes.contains(&"runs_corrupt"), "{codes:?}");
    let chapter = fs::read_to_string(dir.join("book/src/report-mock/index.md")).unwrap();
    let banner = &chapter[..chapter.find("\n\n#").unwrap_or(chapter.len())];
    assert!(!chapter.contains("No warnings"), "{chapter}");
    for said in [
        "1 planned run is not in the store",
        "l4-d96-t1e5",
        "l1-d16-t2e4 (result.json is not a run record",
    ] {
        assert!(
            chapter.contains(said),
            "`{said}` not in the chapter:\n{banner}"
        );
    }
    // A gate on the warning fails the report (exit 4).
    let gated = dir.join("gated.yaml");
    fs::write(
        &gated,
        fs::read_to_string(&study).unwrap().replace(
            "checks:\n",
            "checks:\n  - \"'runs_missing' not in fits.warning_codes\"\n",
        ),
    )
    .unwrap();
    let out = mock(&["report"], &gated, &dir);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    fs::remove_dir_all(&dir).unwrap();
}

/// A link in the study's own text that names nothing is bad input: `validate` says so, and
/// `report` exits 2 before writing any of the chapter.
#[test]
fn a_broken_link_in_user_text_publishes_nothing() {
    let dir = fresh_dir("broken-link");
    let study = dir.join("links.yaml");
    let text = fs::read_to_string(root().join(STUDY))
        .unwrap()
        .replace("checks:\n", "report:\n  sections:\n    - text: \"See [the notes](notes/missing.md).\"\n    - chart: loss_vs_params\nchecks:\n");
    fs::write(&study, text).unwrap();
    let book = dir.join("book");
    let out = scalebook(&[
        "validate",
        study.to_str().unwrap(),
        "--book",
        book.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("report.sections[0]: the link `notes/missing.md`"),
        "{}",
        stderr(&out)
    );
    let out = mock(&["run"], &study, &dir);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("notes/missing.md"),
        "{}",
        stderr(&out)
    );
    assert!(
        !book.join("src/report-mock").exists(),
        "a chapter was written"
    );
    let summary = fs::read_to_string(book.join("src/SUMMARY.md")).unwrap_or_default();
    assert!(!summary.contains("report-mock"), "{summary}");
    // With the file in place, the same study publishes.
    fs::create_dir_all(book.join("src/report-mock/notes")).unwrap();
    fs::write(book.join("src/report-mock/notes/missing.md"), "# Notes\n").unwrap();
    let out = scalebook(&[
        "validate",
        study.to_str().unwrap(),
        "--book",
        book.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = mock(&["report"], &study, &dir);
    assert!(out.status.success(), "{}", stderr(&out));
    fs::remove_dir_all(&dir).unwrap();
}

/// Four studies reported into one book at once, several rounds: every report succeeds and
/// `SUMMARY.md` lists every chapter.
#[test]
fn reports_into_one_book_at_once_do_not_collide() {
    let dir = fresh_dir("parallel-reports");
    let base = fs::read_to_string(root().join(STUDY)).unwrap();
    let names = ["par-a", "par-b", "par-c", "par-d"];
    for name in names {
        let study = dir.join(format!("{name}.yaml"));
        fs::write(
            &study,
            base.replace("name: report-mock", &format!("name: {name}")),
        )
        .unwrap();
        let out = mock(&["run", "--no-report"], &study, &dir);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    for round in 0..3 {
        let children: Vec<_> = names
            .iter()
            .map(|name| {
                std::process::Command::new(env!("CARGO_BIN_EXE_scalebook"))
                    .args(["report"])
                    .arg(dir.join(format!("{name}.yaml")))
                    .args(["--executor", "mock", "--store"])
                    .arg(dir.join("store"))
                    .arg("--book")
                    .arg(dir.join("book"))
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", stderr(&out));
        }
        let summary = fs::read_to_string(dir.join("book/src/SUMMARY.md")).unwrap();
        for name in names {
            assert!(
                summary.contains(&format!("({name}/index.md)")),
                "round {round}: {summary}"
            );
        }
    }
    fs::remove_dir_all(&dir).unwrap();
}

/// Every command takes a study named by its bare file name (its folder is the working
/// directory), `trainer:` included.
#[test]
fn every_command_takes_a_bare_file_name() {
    let dir = fresh_dir("bare-name");
    fs::write(dir.join("t.py"), "print('never run')\n").unwrap();
    let text = fs::read_to_string(root().join(STUDY)).unwrap().replace(
        "fits:",
        "trainer:\n  command: python3 t.py --spec {spec}\n  version_file: t.py\nfits:",
    );
    fs::write(dir.join("study.yaml"), &text).unwrap();
    let (store, book) = (dir.join("store"), dir.join("book"));
    let (st, bk) = (store.to_str().unwrap(), book.to_str().unwrap());
    let m = ["--executor", "mock", "--store", st];
    let commands: Vec<Vec<&str>> = vec![
        vec!["validate", "study.yaml"],
        vec!["plan", "study.yaml", "--store", st],
        [&["run", "study.yaml", "--book", bk][..], &m[..]].concat(),
        [&["status", "study.yaml"][..], &m[..]].concat(),
        [&["fit", "study.yaml"][..], &m[..]].concat(),
        [&["report", "study.yaml", "--book", bk][..], &m[..]].concat(),
        vec!["schema"],
    ];
    for args in commands {
        let out = scalebook_in(&dir, &args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_no_crash(&stderr(&out), &dir);
    }
    fs::remove_dir_all(&dir).unwrap();
}

/// A cost law over runs timed on different machines says so.
#[test]
fn a_cost_law_over_several_machines_is_flagged() {
    let dir = fresh_dir("mixed-machines");
    let study = root().join(STUDY);
    let out = mock(&["run", "--no-report"], &study, &dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let codes = |dir: &Path| -> Vec<String> {
        fits(dir, "report-mock")["warning_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect()
    };
    assert!(!codes(&dir).contains(&"cost_mixed_machines".to_string()));
    for name in ["l1-d16-t2e4", "l2-d32-t5e4"] {
        let path = entry(&dir, name).join("result.json");
        let mut v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        v["host"] = Value::from("gpu-node-7");
        fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }
    let out = mock(&["fit"], &study, &dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        codes(&dir).contains(&"cost_mixed_machines".to_string()),
        "{:?}",
        codes(&dir)
    );
    let f = fits(&dir, "report-mock");
    let w = f["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "cost_mixed_machines")
        .unwrap();
    let message = w["message"].as_str().unwrap();
    assert!(message.contains("gpu-node-7 / mock (2 runs)"), "{message}");
    fs::remove_dir_all(&dir).unwrap();
}

/// A free-E law whose floor collapsed does not place the final run: the reduced law the
/// data support does, `run` says which run it trains before training it, and the chapter
/// opens with the verdict.
#[test]
fn a_collapsed_law_hands_the_final_run_to_a_supported_one() {
    let dir = fresh_dir("collapsed-final");
    let study = root().join(STUDY);
    // This law's grid drives the free E to zero (`param_at_bound`).
    let out = mock(
        &["run", "--mock-law", "1.5,300,500,0.3,0.35,0.01"],
        &study,
        &dir,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let said = err
        .lines()
        .find(|l| l.contains(": final run l"))
        .unwrap_or_else(|| panic!("the final run is not announced:\n{err}"));
    assert!(
        said.contains(" steps, ") && said.contains("and baseline l1-d16-baseline"),
        "{said}"
    );
    let chapter = fs::read_to_string(dir.join("book/src/report-mock/index.md")).unwrap();
    assert!(chapter.contains("final_from_reduced_law"), "{chapter}");
    assert!(
        chapter.contains("the final run follows the zero-E law"),
        "{chapter}"
    );
    // fits.json holds the fits alone: the verdict is the chapter's.
    let codes = fits(&dir, "report-mock")["warning_codes"].to_string();
    assert!(
        codes.contains("param_at_bound") && !codes.contains("final_"),
        "{codes}"
    );
    fs::remove_dir_all(&dir).unwrap();
}
