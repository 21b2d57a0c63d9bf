//! `scalebook plan --emit-specs` + `scalebook train-point`: real (tiny) training from the CLI,
//! its records, determinism across processes, and bad data.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use scalebook::isa::{Isa, Kind};
use scalebook::record::numerics_digest;
use scalebook::record::read::read_entry;
use scalebook::study::plan::{TRAINER_GOLDEN, TRAINER_VERSION};

use crate::support::{assert_no_crash, fresh_dir, root, scalebook, stderr};

fn temp(name: &str) -> PathBuf {
    fresh_dir(&format!("tp-{name}"))
}

/// Emit the specs of `study` into `dir/specs` and return their paths.
fn emit(study: &str, dir: &Path) -> Vec<PathBuf> {
    let specs = dir.join("specs");
    let out = scalebook(&[
        "plan",
        study,
        "--emit-specs",
        specs.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut paths: Vec<PathBuf> = fs::read_dir(&specs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
}

fn train(spec: &Path, out: &Path) -> std::process::Output {
    scalebook(&[
        "train-point",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "1",
    ])
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// The curve without its wall-clock column.
fn losses(dir: &Path) -> Vec<(Value, Value, Value)> {
    fs::read_to_string(dir.join("curve.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["step"].clone(),
                v["train_loss"].clone(),
                v["val_loss"].clone(),
            )
        })
        .collect()
}

#[test]
fn trains_a_spec_and_writes_its_record() {
    let dir = temp("ok");
    let specs = emit("tests/fixtures/valid/tiny_train.yaml", &dir);
    assert_eq!(specs.len(), 1);
    let name = specs[0].file_stem().unwrap().to_str().unwrap().to_string();
    assert!(name.starts_with("l1-d16-t4096-"), "{name}");
    let out = train(&specs[0], &dir.join("run"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let result = json(&dir.join("run/result.json"));
    assert_eq!(result["status"], "ok");
    assert_eq!(result["steps"], 32);
    assert_eq!(result["tokens_trained"], 4096);
    for key in [
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
        "data",
        "data_entropy_nats",
        "data_entropy_stderr",
        "tool_version",
    ] {
        assert!(!result[key].is_null(), "result.json lacks {key}: {result}");
    }
    let val = result["val_loss"].as_f64().unwrap();
    let entropy = result["data_entropy_nats"].as_f64().unwrap();
    assert!(
        val > entropy && val < (64f64).ln(),
        "val {val}, entropy {entropy}"
    );
    assert_eq!(json(&dir.join("run/spec.json")), json(&specs[0]));
    // Curve: one line per step; evaluations at 16 and 32.
    let curve = losses(&dir.join("run"));
    assert_eq!(curve.len(), 32);
    assert!(curve[15].2.is_number() && curve[31].2.is_number() && curve[0].2.is_null());
    assert_eq!(curve[31].2, result["val_loss"]);
    // A second process with the same thread count reproduces the curve bit for bit.
    let again = train(&specs[0], &dir.join("again"));
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(losses(&dir.join("again")), curve);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn trains_text_bpe_and_token_files() {
    for (study, vocab) in [
        ("tests/fixtures/valid/tiny_text.yaml", 256),
        ("tests/fixtures/valid/tiny_bpe.yaml", 270),
        ("tests/fixtures/valid/token_file.yaml", 16),
    ] {
        let dir = temp("files");
        let specs = emit(study, &dir);
        let out = train(&specs[0], &dir.join("run"));
        assert_eq!(out.status.code(), Some(0), "{study}: {}", stderr(&out));
        let result = json(&dir.join("run/result.json"));
        assert_eq!(result["vocab"], vocab, "{study}");
        assert!(result["val_loss"].as_f64().unwrap().is_finite());
        assert!(
            result["data_entropy_nats"].is_null(),
            "files have no known entropy"
        );
        // A corpus's training split is the pool every run's tokens come from.
        let unique = result["unique_tokens"].as_u64().unwrap();
        assert!(unique > 0 && unique < 10_000_000, "{study}: {unique}");
        let bpe = study.contains("bpe");
        assert_eq!(dir.join("run/tokenizer.json").exists(), bpe, "{study}");
        assert_eq!(result["tokenizer_sha256"].is_string(), bpe, "{study}");
        fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn bad_data_and_bad_specs_exit_2_naming_the_file() {
    let dir = temp("bad");
    // A corpus that is fine when planned, then changes.
    let corpus = dir.join("corpus.txt");
    fs::write(&corpus, "abcdefghij".repeat(50)).unwrap();
    let study = dir.join("study.yaml");
    fs::write(
        &study,
        "version: 1\nname: bad\ndata: { source: text, paths: [corpus.txt] }\n\
         model: { context: 8, sizes: [{ layers: 1, d_model: 16, heads: 2 }] }\n\
         tokens: [64]\ntrain: { batch: 4, eval_tokens: 16 }\n",
    )
    .unwrap();
    let specs = emit(study.to_str().unwrap(), &dir);
    fs::write(&corpus, "abcdefghij".repeat(51)).unwrap();
    let out = train(&specs[0], &dir.join("run"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the data changed since the run was planned"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("run/result.json").exists());
    // The same with an edit of the same size whose modification time is put back (as
    // `cp -p`, `rsync -a` or `tar x` do): the guard reads the bytes, not a cached digest.
    fs::write(&corpus, "abcdefghij".repeat(50)).unwrap();
    let specs = emit(study.to_str().unwrap(), &dir.join("same-size"));
    let mtime = fs::metadata(&corpus).unwrap().modified().unwrap();
    fs::write(&corpus, "abcdefghiJ".repeat(50)).unwrap();
    fs::File::options()
        .write(true)
        .open(&corpus)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let out = train(&specs[0], &dir.join("run"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the data changed since the run was planned"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("run/result.json").exists());
    // And `plan` sees the edit too: its key moves.
    let again = emit(study.to_str().unwrap(), &dir.join("same-size-again"));
    let key = |p: &PathBuf| {
        fs::read_to_string(p)
            .unwrap()
            .split("\"key\"")
            .nth(1)
            .unwrap()[..70]
            .to_string()
    };
    assert_ne!(
        key(&specs[0]),
        key(&again[0]),
        "the planned key did not move"
    );

    // Non-UTF-8 text: `validate` and `train-point` both name the file and the offset.
    fs::write(&corpus, b"abc\xffdef".repeat(60)).unwrap();
    let out = scalebook(&["validate", study.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("corpus.txt: not valid UTF-8 at byte offset 3"),
        "{}",
        stderr(&out)
    );
    let specs = emit(study.to_str().unwrap(), &dir.join("again"));
    let out = train(&specs[0], &dir.join("run"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not valid UTF-8 at byte offset 3"),
        "{}",
        stderr(&out)
    );

    // A token file with an id ≥ vocab.
    let bin = dir.join("ids.bin");
    let mut ids: Vec<u8> = (0u16..200).flat_map(|i| (i % 10).to_le_bytes()).collect();
    ids[2 * 150] = 77;
    fs::write(&bin, ids).unwrap();
    let tok_study = dir.join("tokens.yaml");
    fs::write(
        &tok_study,
        "version: 1\nname: tok\ndata: { source: tokens, path: ids.bin, vocab: 10 }\n\
         model: { context: 4, sizes: [{ layers: 1, d_model: 8, heads: 2 }] }\n\
         tokens: [64]\ntrain: { batch: 4, eval_tokens: 8 }\n",
    )
    .unwrap();
    let out = scalebook(&["validate", tok_study.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("ids.bin: token id 77 at token 150 (byte offset 300) is not below vocab 10"),
        "{}",
        stderr(&out)
    );

    // Specs that are not specs, or were edited.
    let junk = dir.join("junk.json");
    fs::write(&junk, "{\"hello\": 1}").unwrap();
    let out = train(&junk, &dir.join("run"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("junk.json: not a scalebook run spec"),
        "{}",
        stderr(&out)
    );
    let out = train(&dir.join("missing.json"), &dir.join("run"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.json: cannot read run spec: no such file"));
    let mut spec = json(&emit("tests/fixtures/valid/tiny_train.yaml", &dir.join("t"))[0]);
    spec["identity"]["train"]["lr"] = Value::from(0.5);
    let edited = dir.join("edited.json");
    fs::write(&edited, spec.to_string()).unwrap();
    let out = train(&edited, &dir.join("run"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the key does not match"),
        "{}",
        stderr(&out)
    );
    assert_no_crash(&stderr(&out), &edited);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_diverging_run_is_recorded_and_exits_3() {
    let dir = temp("diverge");
    let study = dir.join("hot.yaml");
    fs::write(
        &study,
        "version: 1\nname: hot\nseed: 1\ndata: { vocab: 64 }\n\
         model: { context: 16, sizes: [{ layers: 1, d_model: 32, heads: 2 }] }\n\
         tokens: [16384]\ntrain: { batch: 8, lr: 1.0, warmup: 0, grad_clip: 0, eval_tokens: 256 }\n",
    )
    .unwrap();
    let specs = emit(study.to_str().unwrap(), &dir);
    let out = train(&specs[0], &dir.join("run"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("run l1-d32-t16384: training loss"),
        "{}",
        stderr(&out)
    );
    let result = json(&dir.join("run/result.json"));
    assert_eq!(result["status"], "diverged");
    assert!(result["diverged_at_step"].is_u64());
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bench_train_prints_the_reference_keys() {
    let out = scalebook(&[
        "bench",
        "train",
        "--layers",
        "1",
        "--d-model",
        "32",
        "--heads",
        "2",
        "--context",
        "16",
        "--batch",
        "4",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--peak-gflops",
        "100",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "tokens_per_second",
        "step_ms_median",
        "mfu",
        "peak_rss_bytes",
    ] {
        assert!(report[key].as_f64().unwrap() > 0.0, "{key}: {report}");
    }
    assert_eq!(report["steps"], 2);
}

/// The engine's numbers are pinned: the golden run's digest, on every instruction set this
/// CPU has and with 1 and 2 threads, is one and the same, and equals `TRAINER_GOLDEN`'s entry
/// for its path — a change to the engine that moves a loss fails here until
/// `TRAINER_VERSION` is bumped (so no stale run is reused).
#[test]
fn the_engine_matches_its_golden_digest_on_every_isa_and_thread_count() {
    let dir = temp("golden");
    let spec = emit("tests/fixtures/valid/golden.yaml", &dir).remove(0);
    let key = json(&spec)["key"].as_str().unwrap().to_string();
    let mut digests: Vec<(String, &str, String)> = Vec::new();
    for kind in Kind::ALL {
        if Isa::available(kind).is_none() {
            // Hardware the machine lacks is the subject here, not a skip.
            scalebook::testing::say(&format!(
                "this CPU has no {}: those kernels are not run here",
                kind.name()
            ));
            continue;
        }
        for threads in ["1", "2"] {
            let out_dir = dir.join(format!("{}-{threads}", kind.name()));
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_scalebook"))
                .args(["train-point", "--spec", spec.to_str().unwrap()])
                .args(["--out", out_dir.to_str().unwrap(), "--threads", threads])
                .env("SCALEBOOK_ISA", kind.name())
                .current_dir(root())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            let entry = read_entry(&out_dir, &key).unwrap().unwrap();
            let path = entry
                .result
                .isa
                .clone()
                .expect("the engine records its path");
            digests.push((path, threads, numerics_digest(&entry.result, &entry.curve)));
        }
    }
    let first = digests[0].2.clone();
    for (path, threads, digest) in &digests {
        assert_eq!(
            digest, &first,
            "{path} with {threads} thread(s) trained other bits than {} with {}",
            digests[0].0, digests[0].1
        );
    }
    for (path, _, digest) in &digests {
        match TRAINER_GOLDEN.iter().find(|(p, _)| p == path) {
            Some((_, want)) => assert_eq!(
                digest, want,
                "the engine's numbers moved on {path}: bump TRAINER_VERSION ({TRAINER_VERSION}, \
                 src/study/plan.rs) and set TRAINER_GOLDEN's digests to {digest}"
            ),
            None => scalebook::testing::say(&format!(
                "no golden digest for instruction-set path {path}: it is {digest} (add it to \
                 TRAINER_GOLDEN); here the engine is checked across instruction sets and \
                 threads above, and against candle's model by \
                 model::cpu::tests::engine_gradients_match_candles_autograd"
            )),
        }
    }
    fs::remove_dir_all(dir).unwrap();
}
