//! Running the binary and reading fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (tests run with it as the working directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// An empty folder `scalebook-<name>-<pid>[-<n>]` under the system's temporary folder: a name
/// asked for again in the same process gets a new folder.
pub fn fresh_dir(name: &str) -> PathBuf {
    static TAKEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut unique = format!("{name}-{}", std::process::id());
    let mut n = 1;
    while taken.contains(&unique) {
        n += 1;
        unique = format!("{name}-{}-{n}", std::process::id());
    }
    taken.push(unique.clone());
    drop(taken);
    let dir = std::env::temp_dir().join(format!("scalebook-{unique}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run `scalebook ARGS…` from the repository root; without `--store`, on a store of the test
/// process's own (never the repository's `.scalebook/`).
pub fn scalebook(args: &[&str]) -> Output {
    let default_store =
        std::env::temp_dir().join(format!("scalebook-default-store-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_scalebook"))
        .args(args)
        .current_dir(root())
        .env("SCALEBOOK_STORE", default_store)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the scalebook binary runs")
}

/// Run `scalebook ARGS…` from `dir` (paths in ARGS are as typed there).
pub fn scalebook_in(dir: &Path, args: &[&str]) -> Output {
    let default_store =
        std::env::temp_dir().join(format!("scalebook-default-store-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_scalebook"))
        .args(args)
        .current_dir(dir)
        .env("SCALEBOOK_STORE", default_store)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the scalebook binary runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Signs of a crash or a Rust debug dump instead of a message meant for people.
pub fn assert_no_crash(text: &str, context: &Path) {
    for marker in [
        "panicked",
        "RUST_BACKTRACE",
        "Os {",
        "kind: ",
        "Error {",
        "unwrap()",
    ] {
        assert!(
            !text.contains(marker),
            "{}: output contains `{marker}`:\n{text}",
            context.display()
        );
    }
}

/// `scalebook ARGS --executor mock --mock-law LAW --store STORE`.
pub fn with_mock(args: &[&str], law: &str, store: &Path) -> Output {
    let mut all = args.to_vec();
    all.extend([
        "--executor",
        "mock",
        "--mock-law",
        law,
        "--store",
        store.to_str().unwrap(),
    ]);
    scalebook(&all)
}

/// `tests/fixtures/valid/report_mock.yaml` with each `(from, to)` replaced (each `from` must
/// be in it), written to `dir/<name>.yaml`.
pub fn mock_study(dir: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(fixture("valid/report_mock.yaml")).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "report_mock.yaml has no `{from}`");
        text = text.replace(from, to);
    }
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The key of every run `scalebook plan <study>` lists, in plan order.
pub fn plan_keys(study: &Path) -> Vec<String> {
    let out = scalebook(&["plan", study.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect()
}

/// `scalebook fit <study> --store <store> --format json`, which must exit 0: its fits.
pub fn fit_json(study: &Path, store: &Path) -> serde_json::Value {
    let out = scalebook(&[
        "fit",
        study.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Why a study in `reports/` cannot be read on this machine, when its corpus is not
/// installed (`scalebook validate` names a data path that matches no file): the published
/// real-text study reads Debian's `fortunes`, which `.ci/run` installs.
pub fn corpus_missing(study: &Path) -> Option<String> {
    let out = scalebook(&["validate", study.to_str().unwrap()]);
    let err = stderr(&out);
    (out.status.code() == Some(2) && err.contains("data.paths") && err.contains("no file matches"))
        .then(|| err.lines().next().unwrap_or_default().to_string())
}
