//! `scalebook plan`: the JSON rows and their values, and the table.

use serde_json::Value;

use crate::support::{fresh_dir, scalebook, stderr, stdout};

const KEYS: [&str; 17] = [
    "key",
    "name",
    "layers",
    "d_model",
    "heads",
    "context",
    "vocab",
    "params_total",
    "params_embedding",
    "params_non_embedding",
    "tokens",
    "tokens_per_param",
    "flops_6nd",
    "flops",
    "est_seconds",
    "est_source",
    "done",
];

/// `scalebook plan ARGS…` on a store of its own (the estimate reads and caches there).
fn plan(args: &[&str]) -> std::process::Output {
    let store = fresh_dir("plan-store");
    let mut all = vec!["plan", "--store", store.to_str().unwrap()];
    all.extend(args);
    scalebook(&all)
}

fn plan_json(study: &str) -> Vec<Value> {
    let out = plan(&[study, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str::<Vec<Value>>(&stdout(&out)).expect("plan prints a JSON array")
}

#[test]
fn quickstart_json_has_every_key_and_exact_values() {
    let rows = plan_json("reports/quickstart.yaml");
    assert_eq!(rows.len(), 12);
    for row in &rows {
        for key in KEYS {
            assert!(row.get(key).is_some(), "missing `{key}` in {row}");
        }
        let n_total = row["params_total"].as_u64().unwrap();
        let n_emb = row["params_embedding"].as_u64().unwrap();
        let n_non = row["params_non_embedding"].as_u64().unwrap();
        assert_eq!(n_total, n_emb + n_non);
        let tokens = row["tokens"].as_u64().unwrap();
        assert_eq!(tokens % (32 * 32), 0, "whole steps of batch × context");
        let flops_6nd = row["flops_6nd"].as_f64().unwrap();
        assert_eq!(flops_6nd, 6.0 * n_non as f64 * tokens as f64);
        assert!(row["flops"].as_f64().unwrap() > flops_6nd);
        assert_eq!(row["key"].as_str().unwrap().len(), 64);
    }
    // First row: l2-d12 at 1.6e5 tokens → 156 steps of 1,024 tokens.
    let first = &rows[0];
    assert_eq!(first["name"], "l2-d12-t1.6e5");
    assert_eq!(first["tokens"], 159_744);
    let entropy = first["data_entropy_nats"].as_f64().unwrap();
    assert!(entropy > 0.6 && entropy < 0.75, "{entropy}");
    // wte 64·12 + wpe 32·12; 2 blocks of 12·12² + 13·12; ln_f 24; head 12·64.
    assert_eq!(first["params_embedding"], 64 * 12 + 32 * 12);
    assert_eq!(
        first["params_non_embedding"],
        2 * (12 * 12 * 12 + 13 * 12) + 24 + 12 * 64
    );
    // Keys are unique.
    let mut keys: Vec<&str> = rows.iter().map(|r| r["key"].as_str().unwrap()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 12);
}

/// Everything but the time estimate (a measurement of this machine) is the same every time.
#[test]
fn plan_is_deterministic() {
    let strip = |mut rows: Vec<Value>| {
        for row in &mut rows {
            let row = row.as_object_mut().unwrap();
            for key in ["est_seconds", "est_source"] {
                assert!(row.remove(key).is_some());
            }
        }
        serde_json::to_string(&rows).unwrap()
    };
    let a = plan_json("reports/quickstart.yaml");
    let b = plan_json("reports/quickstart.yaml");
    assert_eq!(strip(a), strip(b));
}

#[test]
fn text_data_keys_follow_file_contents() {
    let rows = plan_json("tests/fixtures/valid/text_corpus.yaml");
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r["vocab"] == 256));
    let tokens = plan_json("tests/fixtures/valid/token_file.yaml");
    assert_eq!(tokens[0]["vocab"], 16);
    // Tied embeddings: the head adds nothing beyond the embedding.
    assert_eq!(
        tokens[0]["params_non_embedding"],
        12 * 16 * 16 + 13 * 16 + 2 * 16
    );
}

#[test]
fn isoflop_rows_carry_their_budget() {
    let rows = plan_json("tests/fixtures/valid/isoflop.yaml");
    assert_eq!(rows.len(), 18);
    for row in &rows {
        let budget = row["budget"].as_f64().unwrap();
        let flops = row["flops"].as_f64().unwrap();
        assert!((flops / budget - 1.0).abs() < 0.05, "{row}");
    }
}

#[test]
fn table_lists_every_run_and_a_total() {
    let out = plan(&["reports/quickstart.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 12 + 4, "{text}");
    assert!(lines[0].starts_with("run "));
    assert!(lines[13].starts_with("12 runs, "));
    assert!(
        lines[14].starts_with("12 of 12 runs to train: about "),
        "{text}"
    );
    assert!(lines[15].starts_with("data entropy rate 0.680"), "{text}");
    assert_eq!(
        lines[16],
        "final run: decided after the grid (the law's optimum for C = 7.200e11 FLOPs)"
    );
    // With the grid's records (the published store), the final run's shape and time.
    let out = scalebook(&["plan", "reports/quickstart.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with(
            "final run: l2-d32-final (2 layers × d_model 32 × 2 heads, 3831 steps, 3.92M tokens, trained in "
        ),
        "{text}"
    );
    assert!(
        last.contains("; baseline l2-d12-baseline (2 layers × d_model 12"),
        "{text}"
    );
}

#[test]
fn invalid_study_plans_nothing() {
    let out = plan(&["tests/fixtures/invalid/heads_not_divisor.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty());
}

/// The time estimate is measured on this machine, never a remembered constant: a fresh store
/// calibrates each shape once and caches it; once runs have trained here, their own wall
/// times take over, and the estimate of each is within a small factor of what it took.
#[test]
fn the_time_estimate_comes_from_measured_throughput() {
    let dir = fresh_dir("plan-estimate");
    let store = dir.join("store");
    let study = "tests/fixtures/valid/tiny_sweep.yaml";
    let plan = |format: &str| {
        let out = scalebook(&[
            "plan",
            study,
            "--store",
            store.to_str().unwrap(),
            "--format",
            format,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    let first = plan("table");
    assert!(first.contains("6 of 6 runs to train"), "{first}");
    assert!(first.contains("from a calibration now"), "{first}");
    let cached = plan("table");
    assert!(cached.contains("6 from the calibration cache"), "{cached}");
    assert_eq!(
        std::fs::read_dir(store.join("calibration"))
            .unwrap()
            .count(),
        1
    );
    let calibrated: Vec<Value> = serde_json::from_str(&plan("json")).unwrap();
    let out = scalebook(&[
        "run",
        study,
        "--store",
        store.to_str().unwrap(),
        "--no-report",
        "--jobs",
        "1",
        "--threads-per-job",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = plan("table");
    assert!(after.contains("0 of 6 runs to train"), "{after}");
    assert!(
        after.contains("6 from runs finished in the store"),
        "{after}"
    );
    let measured: Vec<Value> = serde_json::from_str(&plan("json")).unwrap();
    // Per shape (the sizes' layer-width prefix): (estimated, measured) seconds in total.
    let mut shapes: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    for (row, before) in measured.iter().zip(&calibrated) {
        let name = row["name"].as_str().unwrap();
        let key = row["key"].as_str().unwrap();
        let entry = store.join("runs").join(format!("{name}-{}", &key[..12]));
        let result: Value =
            serde_json::from_str(&std::fs::read_to_string(entry.join("result.json")).unwrap())
                .unwrap();
        let wall = result["wall_seconds"].as_f64().unwrap();
        let estimate = row["est_seconds"].as_f64().unwrap();
        let shape = name.rsplit_once("-t").unwrap().0.to_string();
        let total = shapes.entry(shape).or_default();
        total.0 += estimate;
        total.1 += wall;
        // From the store: the time law of the shape's own runs, so near its own time (the
        // cores are shared with other tests, so one run of a pair may have been slowed).
        let ratio = estimate / wall;
        assert!(
            (0.2..5.0).contains(&ratio),
            "{name}: store estimate {ratio:.2} × its wall time"
        );
        // The calibration, before any run, times the steps (and evaluations) of a fresh
        // store, which knows no run's start-up cost yet: against the runs' own step time it
        // is within a factor of 20 either way. On an idle machine it reads about 0.5× here;
        // the other tests share the cores while these runs train, which slows the runs but
        // not the calibration measured before them (against their wall time, 0.09× was seen
        // so on the 2-core CI machine).
        let steps = result["train_seconds"].as_f64().unwrap();
        let ratio = before["est_seconds"].as_f64().unwrap() / steps;
        assert!(
            (0.05..20.0).contains(&ratio),
            "{name}: calibrated {ratio:.2} × its optimizer steps' time"
        );
    }
    // The shape's law is fitted to its runs' times (a line with its intercept, or their mean
    // rate), so over each shape the estimates add up to what the runs took.
    assert_eq!(shapes.len(), 3, "{shapes:?}");
    for (shape, (estimated, took)) in &shapes {
        assert!(
            (estimated / took - 1.0).abs() < 1e-3,
            "{shape}: estimated {estimated:.4} s in all, trained in {took:.4} s"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
