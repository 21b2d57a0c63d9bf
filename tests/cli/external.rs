//! External trainers (`trainer:` in the study file): the numpy adapter trains a study end
//! to end; a stand-in trainer breaks the contract in every way a real one can, and each
//! run fails (or diverges) with its reason while the sweep goes on.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{assert_no_crash, fresh_dir, root, scalebook, stderr, stdout};

pub(crate) fn has_python_module(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub(crate) fn result(store: &Path, run: &str) -> serde_json::Value {
    let runs = store.join("runs");
    let dir = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&format!("{run}-")) && name.len() == run.len() + 13
        })
        .unwrap_or_else(|| panic!("no entry for {run} in {}", runs.display()));
    serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap()).unwrap()
}

/// The numpy example study, with its trainer's version declared as `version`.
pub(crate) fn numpy_study(dir: &Path, version: &str) -> PathBuf {
    let trainers = root().join("examples/trainers");
    let text = std::fs::read_to_string(trainers.join("numpy-study.yaml"))
        .unwrap()
        .replace(
            "version_file: numpy_gpt.py",
            &format!("version: {version}\n  workdir: {}", trainers.display()),
        );
    let path = dir.join("numpy-study.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_numpy_adapter_trains_a_study_end_to_end_and_its_version_is_its_identity() {
    if !has_python_module("numpy") {
        scalebook::testing::skip(
            "the_numpy_adapter_trains_a_study_end_to_end_and_its_version_is_its_identity",
            "python3 with numpy is not installed (.ci/run installs it)",
        );
        return;
    }
    let dir = fresh_dir("numpy-trainer");
    let (store, book) = (dir.join("store"), dir.join("book"));
    let (store_s, book_s) = (store.to_str().unwrap(), book.to_str().unwrap());
    // The example itself, as shipped (version from the adapter's file hash).
    let example = root().join("examples/trainers/numpy-study.yaml");
    let ex = example.to_str().unwrap();
    let out = scalebook(&["run", ex, "--store", store_s, "--book", book_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("4 trained, 0 cached"),
        "{}",
        stderr(&out)
    );
    for run in ["l1-d16-t2e4", "l1-d16-t4e4", "l2-d32-t2e4", "l2-d32-t4e4"] {
        let r = result(&store, run);
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["device"], "cpu (numpy)");
        assert!(r.get("params_built").is_none(), "{r}");
        let loss = r["val_loss"].as_f64().unwrap();
        // Learned: below the uniform guess ln 64, above the language's entropy.
        assert!(loss < 64f64.ln() - 1.0, "{run}: {loss}");
        assert!(
            loss > r["data_entropy_nats"].as_f64().unwrap(),
            "{run}: {loss}"
        );
        assert!(
            r["spec"]["external"]["version"]
                .as_str()
                .unwrap()
                .starts_with("numpy_gpt.py@sha256:")
        );
        // The machine's folder is not kept in the record.
        assert!(r["spec"]["external"].get("workdir").is_none(), "{r}");
    }
    assert!(book.join("src/numpy-gpt/index.md").is_file());
    // A second run trains nothing; the reviewer's re-training agrees.
    let again = scalebook(&["run", ex, "--store", store_s, "--book", book_s]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("0 trained, 4 cached"),
        "{}",
        stderr(&again)
    );
    let verify = scalebook(&[
        "verify", ex, "--store", store_s, "--book", book_s, "--sample", "1",
    ]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    assert!(stdout(&verify).contains("external trainer `numpy_gpt.py@sha256:"));

    // A store given as a relative path: the trainer, in its own folder, still finds
    // every file (the job's paths are absolute).
    let relative = Command::new(env!("CARGO_BIN_EXE_scalebook"))
        .args(["run", ex, "--store", "relative-store", "--no-report"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(relative.status.success(), "{}", stderr(&relative));
    assert!(stderr(&relative).contains("4 trained, 0 cached, 0 failed"));

    // A declared version: changing it retrains every run, keeping it trains none.
    let study = numpy_study(&dir, "numpy/1");
    let s = study.to_str().unwrap();
    let first = scalebook(&["run", s, "--store", store_s, "--no-report"]);
    assert!(
        stderr(&first).contains("4 trained, 0 cached"),
        "{}",
        stderr(&first)
    );
    let same = scalebook(&["run", s, "--store", store_s, "--no-report"]);
    assert!(
        stderr(&same).contains("0 trained, 4 cached"),
        "{}",
        stderr(&same)
    );
    let bumped = numpy_study(&dir, "numpy/2");
    let out = scalebook(&[
        "run",
        bumped.to_str().unwrap(),
        "--store",
        store_s,
        "--no-report",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("4 trained, 0 cached"),
        "{}",
        stderr(&out)
    );
}

pub(crate) const BROKEN: &str = "\
version: 1
name: broken-trainer
seed: 1
data: { vocab: 64, order: 2 }
model: { context: 16, sizes: [{ layers: 1, d_model: 16, heads: 2 }] }
tokens: [1024, 2048, 3072, 4096, 5120, 6144, 7168, 8192, 9216, 10240]
train: { batch: 4, lr: 1e-2, eval_every: 8, eval_tokens: 256 }
fits:
  - { law: power, x: tokens, form: pure, bootstrap: 0 }
trainer:
  command: python3 fake_trainer.py --spec {spec} --device {device}
  version: fake/1
  timeout: 3
";

#[test]
fn a_trainer_that_breaks_the_contract_fails_its_run_with_the_reason_and_the_sweep_goes_on() {
    let dir = fresh_dir("broken-trainer");
    let study = dir.join("broken.yaml");
    std::fs::write(
        &study,
        BROKEN.replace(
            "version: fake/1",
            &format!(
                "version: fake/1\n  workdir: {}",
                root().join("tests/fixtures/trainers").display()
            ),
        ),
    )
    .unwrap();
    let store = dir.join("store");
    let (s, st) = (study.to_str().unwrap(), store.to_str().unwrap());
    let out = scalebook(&["run", s, "--store", st, "--no-report", "--devices", "d0,d1"]);
    let err = stderr(&out);
    assert_no_crash(&err, &study);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let expect = [
        ("l1-d16-t1024", "ok", ""),
        (
            "l1-d16-t2048",
            "failed",
            "the trainer exited with status 3: boom: out of patience",
        ),
        ("l1-d16-t3072", "failed", "the trainer wrote no result"),
        ("l1-d16-t4096", "diverged", "training loss"),
        ("l1-d16-t5.12e3", "failed", "curve.jsonl is truncated"),
        ("l1-d16-t6144", "failed", "ran past its time limit of 3 s"),
        ("l1-d16-t7168", "ok", ""),
        (
            "l1-d16-t8192",
            "failed",
            "the trainer was killed by SIGKILL (signal 9)",
        ),
        ("l1-d16-t9216", "failed", "result.json: "),
        (
            "l1-d16-t10240",
            "failed",
            "the trainer's result.json gave a number that is not finite: tokens_per_second = inf",
        ),
    ];
    for (run, status, reason) in expect {
        let r = result(&store, run);
        assert_eq!(r["status"], status, "{run}: {r}");
        let why = r["reason"].as_str().unwrap_or_default();
        assert!(why.contains(reason), "{run}: `{why}` lacks `{reason}`");
        if status != "ok" {
            assert!(why.starts_with(&format!("run {run}: ")), "{why}");
            assert!(err.contains(run), "{err}");
        }
    }
    // Each run trained on one of the two devices, two at a time.
    for run in ["l1-d16-t1024", "l1-d16-t7168"] {
        let device = result(&store, run)["device"].as_str().unwrap().to_string();
        assert!(
            ["fake d0", "fake d1"].contains(&device.as_str()),
            "{device}"
        );
    }
    // The run whose trainer built 7 more parameters is kept and flagged.
    let params = result(&store, "l1-d16-t7168");
    assert_eq!(
        params["params_built"].as_u64(),
        Some(params["params_total"].as_u64().unwrap() + 7)
    );
    let fits: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(store.join("studies/broken-trainer/fits.json")).unwrap(),
    )
    .unwrap();
    let codes: Vec<&str> = fits["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"params_mismatch"), "{codes:?}");
    assert!(codes.contains(&"runs_left_out"), "{codes:?}");
    // The trainer's own output stays beside each record; its work folder does not.
    let entries: Vec<PathBuf> = std::fs::read_dir(store.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(entries.len(), 10);
    for e in &entries {
        assert!(!e.join("trainer").exists(), "{}", e.display());
        assert!(e.join("trainer.log").is_file(), "{}", e.display());
    }
    // Nothing is retried without --retry-failed; finished runs stay as they are.
    let again = scalebook(&["run", s, "--store", st, "--no-report"]);
    assert_eq!(again.status.code(), Some(3));
    assert!(
        stderr(&again).contains("0 trained, 2 cached, 8 failed"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn trainer_sections_are_checked_at_validate() {
    let dir = fresh_dir("trainer-validate");
    let base = "\
version: 1
name: t
model: { context: 16, sizes: [{ layers: 1, d_model: 16, heads: 2 }] }
tokens: [1024]
";
    let cases = [
        (
            "trainer:\n  command: python3 t.py --spec {spce}\n  version: a/1\n",
            "trainer.command: unknown placeholder `{spce}`",
        ),
        (
            "trainer:\n  command: python3 t.py {spec}\n",
            "trainer: missing `version:`",
        ),
        (
            "trainer:\n  command: python3 t.py {spec}\n  version: a\n  version_file: t.py\n",
            "trainer.version_file: give either",
        ),
        (
            "trainer:\n  command: python3 t.py {spec}\n  version_file: nowhere.py\n",
            "nowhere.py: cannot read",
        ),
        (
            "trainer:\n  command: python3 t.py {spec}\n  version: a\n  workdir: nowhere\n",
            "trainer.workdir:",
        ),
        (
            "trainer:\n  command: \"python3 'unclosed\"\n  version: a\n",
            "unbalanced quotes",
        ),
        ("trainer: pytorch\n", "unknown trainer `pytorch`"),
        (
            "trainer:\n  command: x {spec}\n  version: a\n  env: { SCALEBOOK_X: y }\n",
            "trainer.env.SCALEBOOK_X",
        ),
        (
            "trainer:\n  command: x {spec}\n  version: a\n  timeout: -1\n",
            "trainer.timeout: must be positive seconds",
        ),
        (
            "trainer:\n  command: x {spec}\n  version: a\n  tolerance: 2\n",
            "trainer.tolerance: must be in (0, 1)",
        ),
        (
            "trainer:\n  command: x {spec}\n  version: a\n  colour: red\n",
            "colour",
        ),
    ];
    for (i, (trainer, message)) in cases.iter().enumerate() {
        let path = dir.join(format!("case{i}.yaml"));
        std::fs::write(&path, format!("{base}{trainer}")).unwrap();
        let out = scalebook(&["validate", path.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{trainer}: {err}");
        assert!(
            err.contains(message),
            "{trainer}: `{err}` lacks `{message}`"
        );
        assert_no_crash(&err, &path);
    }
    // `builtin` is today's engine: the same keys as no `trainer:` at all.
    let plain = dir.join("plain.yaml");
    std::fs::write(&plain, base).unwrap();
    let builtin = dir.join("builtin.yaml");
    std::fs::write(&builtin, format!("{base}trainer: builtin\n")).unwrap();
    let key = |p: &Path| {
        let out = scalebook(&["plan", p.to_str().unwrap(), "--format", "json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        rows[0]["key"].as_str().unwrap().to_string()
    };
    assert_eq!(key(&plain), key(&builtin));
    // --devices belongs to external trainers.
    let out = scalebook(&["run", plain.to_str().unwrap(), "--devices", "0,1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--devices applies to a study whose `trainer:`"));
}

/// Whether process `pid` is alive (and not a zombie).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next();
        !matches!(state, Some("Z" | "X") | None)
    })
}

/// `kill -9` of `run` ends everything its external trainer started, even a worker in a
/// session of its own, which neither a process group nor a death signal reaches.
#[test]
fn killing_run_leaves_no_process_of_the_trainer_behind() {
    let dir = fresh_dir("trainer-orphans");
    let study = dir.join("orphans.yaml");
    std::fs::write(
        &study,
        BROKEN
            .replace(
                "tokens: [1024, 2048, 3072, 4096, 5120, 6144, 7168, 8192, 9216, 10240]",
                "tokens: [11264]",
            )
            .replace("timeout: 3", "timeout: 600")
            .replace(
                "version: fake/1",
                &format!(
                    "version: fake/1\n  workdir: {}",
                    root().join("tests/fixtures/trainers").display()
                ),
            ),
    )
    .unwrap();
    let pid_file = dir.join("grandchild.pid");
    let mut run = Command::new(env!("CARGO_BIN_EXE_scalebook"))
        .args(["run", study.to_str().unwrap(), "--no-report", "--store"])
        .arg(dir.join("store"))
        .env("FAKE_GRANDCHILD_PID", &pid_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let grandchild: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break pid;
        }
        assert!(
            start.elapsed().as_secs() < 60,
            "the trainer never started its worker"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(alive(grandchild));
    run.kill().unwrap();
    run.wait().unwrap();
    let start = std::time::Instant::now();
    while alive(grandchild) {
        if start.elapsed().as_secs() >= 10 {
            // SAFETY: cleaning up the test's own stray process before failing.
            unsafe { libc::kill(grandchild, libc::SIGKILL) };
            panic!("the trainer's worker {grandchild} outlived `kill -9` of run");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `trainer.tokens: stream` hands the training tokens through a named pipe: the same runs
/// (the same keys, the same losses to the bit) with no token file left on disk, and a
/// trainer that never opens the pipe is not waited for.
#[test]
fn streamed_tokens_train_the_same_runs_as_a_token_file() {
    if !has_python_module("numpy") {
        scalebook::testing::skip(
            "streamed_tokens_train_the_same_runs_as_a_token_file",
            "python3 with numpy is not installed (.ci/run installs it)",
        );
        return;
    }
    let dir = fresh_dir("numpy-stream");
    let file = numpy_study(&dir, "numpy/1");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("tokens: [2e4, 4e4]", "tokens: [2e4]");
    std::fs::write(&file, &text).unwrap();
    let stream = dir.join("stream.yaml");
    std::fs::write(
        &stream,
        text.replace("version: numpy/1", "version: numpy/1\n  tokens: stream"),
    )
    .unwrap();
    let mut records = Vec::new();
    for (study, store) in [
        (&file, dir.join("file-store")),
        (&stream, dir.join("stream-store")),
    ] {
        let out = scalebook(&[
            "run",
            study.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            "--no-report",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("2 trained, 0 cached, 0 failed"),
            "{}",
            stderr(&out)
        );
        let mut runs: Vec<(String, serde_json::Value)> = std::fs::read_dir(store.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .map(|p| {
                let r: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(p.join("result.json")).unwrap())
                        .unwrap();
                (p.file_name().unwrap().to_string_lossy().into_owned(), r)
            })
            .collect();
        runs.sort_by(|a, b| a.0.cmp(&b.0));
        records.push(runs);
    }
    assert_eq!(records[0].len(), 2);
    for ((a_dir, a), (b_dir, b)) in records[0].iter().zip(&records[1]) {
        assert_eq!(a_dir, b_dir, "the same key either way");
        for field in ["val_loss", "train_loss", "tokens_trained"] {
            assert_eq!(a[field], b[field], "{a_dir}: {field}");
        }
    }
    // A trainer that fails before reading the pipe: the run fails with its reason, and
    // scalebook does not hang on the pipe.
    let broken = dir.join("broken.yaml");
    std::fs::write(
        &broken,
        text.replace("version: numpy/1", "version: numpy/9\n  tokens: stream")
            .replace(
                "python3 numpy_gpt.py",
                "python3 -c 'import sys; sys.exit(4)'",
            ),
    )
    .unwrap();
    let out = scalebook(&[
        "run",
        broken.to_str().unwrap(),
        "--store",
        dir.join("broken-store").to_str().unwrap(),
        "--no-report",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exited with status 4"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A µP study's job carries its parametrisation, and the example trainer, which implements
/// the standard one only, refuses every run with that reason instead of training it wrong.
#[test]
fn the_numpy_trainer_refuses_a_mup_job() {
    if !has_python_module("numpy") {
        scalebook::testing::skip(
            "the_numpy_trainer_refuses_a_mup_job",
            "python3 with numpy is not installed (.ci/run installs it)",
        );
        return;
    }
    let dir = fresh_dir("numpy-mup");
    let file = numpy_study(&dir, "numpy/1");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("tokens: [2e4, 4e4]", "tokens: [2e4]")
        .replace(
            "- { layers: 1, d_model: 16, heads: 2 }",
            "- { layers: 2, d_model: 16, heads: 2 }",
        )
        .replace(
            "  context: 16\n",
            "  context: 16\n  parametrization: mup\n  base_width: 16\n",
        );
    std::fs::write(&file, &text).unwrap();
    let store = dir.join("store");
    let out = scalebook(&[
        "run",
        file.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--no-report",
    ]);
    let err = stderr(&out);
    assert_no_crash(&err, &file);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("0 cached, 2 failed"), "{err}");
    assert!(
        err.contains("model.parametrization is mup; this trainer implements standard only"),
        "{err}"
    );
}

/// A corpus run through an external trainer records the corpus's training split as its unique
/// tokens, as a built-in run does: scalebook draws the trainer's windows from it.
#[test]
fn an_external_corpus_run_records_its_unique_tokens() {
    let dir = fresh_dir("external-unique");
    let corpus: String = (0..400)
        .map(|i| format!("line {i} of a small corpus, said again and again.\n"))
        .collect();
    std::fs::write(dir.join("corpus.txt"), &corpus).unwrap();
    let study = dir.join("u.yaml");
    std::fs::write(
        &study,
        format!(
            "version: 1\nname: u\nseed: 1\n\
             data: {{ source: text, paths: [corpus.txt], val_fraction: 0.1 }}\n\
             model: {{ context: 16, sizes: [{{ layers: 1, d_model: 16, heads: 2 }}] }}\n\
             tokens: [1024]\ntrain: {{ batch: 4, lr: 1e-2, eval_every: 8, eval_tokens: 256 }}\n\
             fits: []\n\
             trainer:\n  command: python3 fake_trainer.py --spec {{spec}} --device {{device}}\n\
             \x20 version: fake/1\n  timeout: 30\n  workdir: {}\n",
            root().join("tests/fixtures/trainers").display()
        ),
    )
    .unwrap();
    let store = dir.join("store");
    let out = scalebook(&[
        "run",
        study.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--book",
        dir.join("book").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let split = (corpus.len() as f64 * 0.9) as u64;
    let runs: Vec<_> = std::fs::read_dir(store.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path().join("result.json"))
        .collect();
    assert_eq!(runs.len(), 1);
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&runs[0]).unwrap()).unwrap();
    assert_eq!(result["unique_tokens"].as_u64(), Some(split), "{result}");
}
