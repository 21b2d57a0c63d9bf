//! `tasks:`: task files scored at every evaluation — a cloze task written by `scalebook task
//! cloze` from a text corpus's validation split, scored while the runs train, recorded as
//! `<name>_accuracy` and `<name>_nll`, part of the runs' identity; every bad task file is one
//! line naming the file and line, exit 2.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{assert_no_crash, fresh_dir, plan_keys, scalebook, stderr};

/// A corpus of sentences over 300 made-up words with Zipf-like frequencies (seeded).
fn corpus(dir: &Path) {
    let syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "zu", "pe"];
    let words: Vec<String> = (0..300usize)
        .map(|i| {
            format!(
                "{}{}{}",
                syllables[i % 10],
                syllables[(i / 10) % 10],
                syllables[(i / 100) % 10]
            )
        })
        .collect();
    let mut state = 12345u64;
    let mut text = String::new();
    for s in 0..6000 {
        for _ in 0..8 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = ((state >> 11) as f64) / ((1u64 << 53) as f64);
            // Rank ∝ u², so small ranks are frequent.
            let k = ((u * u) * 300.0) as usize;
            text.push_str(&words[k.min(299)]);
            text.push(' ');
        }
        text.push_str(if s % 3 == 0 { ".\n" } else { ". " });
    }
    fs::write(dir.join("corpus.txt"), text).unwrap();
}

fn study(dir: &Path, tasks: &str) -> PathBuf {
    let path = dir.join(if tasks.is_empty() {
        "plain.yaml"
    } else {
        "cloze.yaml"
    });
    fs::write(
        &path,
        format!(
            "version: 1\nname: cloze\nseed: 2\nstore: store\n\
             data: {{ source: text, paths: [corpus.txt], val_fraction: 0.1 }}\n\
             model: {{ context: 48, sizes: [{{ layers: 1, d_model: 16, heads: 2 }}] }}\n\
             tokens: [24576]\ntrain: {{ batch: 8, lr: 1e-2, eval_every: 16, eval_tokens: 4096 }}\n\
             fits: []\n{tasks}report:\n  sections:\n    - table: runs\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_cloze_task_is_written_scored_and_recorded() {
    let dir = fresh_dir("tasks-cloze");
    corpus(&dir);
    let plain = study(&dir, "");
    let task = dir.join("cloze.jsonl");
    let out = scalebook(&[
        "task",
        "cloze",
        plain.to_str().unwrap(),
        "--out",
        task.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("500 cloze items, 4 choices each (chance 25.0 %)"),
        "{}",
        stderr(&out)
    );
    let text = fs::read_to_string(&task).unwrap();
    let items: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(items.len(), 500);
    let corpus_text = fs::read_to_string(dir.join("corpus.txt")).unwrap();
    let validation = &corpus_text[(corpus_text.len() as f64 * 0.9) as usize..];
    for item in &items {
        let choices = item["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 4);
        let answer = item["answer"].as_u64().unwrap() as usize;
        let whole = format!(
            "{}{}",
            item["context"].as_str().unwrap(),
            choices[answer].as_str().unwrap()
        );
        assert!(validation.contains(&whole), "{item}");
        // The context and its longest choice fit the model's 48 tokens + 1 (bytes here).
        let longest = choices
            .iter()
            .map(|c| c.as_str().unwrap().len())
            .max()
            .unwrap();
        assert!(
            item["context"].as_str().unwrap().len() + longest <= 49,
            "{item}"
        );
    }
    // The same seed writes the same file.
    let again = dir.join("again.jsonl");
    scalebook(&[
        "task",
        "cloze",
        plain.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(&again).unwrap(), fs::read(&task).unwrap());

    // Scored while the run trains; part of the identity.
    let with = study(&dir, "tasks:\n  - { name: cloze, path: cloze.jsonl }\n");
    let with_keys = plan_keys(&with);
    let plain_keys = plan_keys(&plain);
    assert_ne!(with_keys, plain_keys);
    let out = scalebook(&["run", with.to_str().unwrap(), "--no-report"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run = fs::read_dir(dir.join("store/runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("result.json").exists())
        .expect("a run record");
    let result: Value =
        serde_json::from_slice(&fs::read(run.join("result.json")).unwrap()).unwrap();
    let accuracy = result["metrics"]["cloze_accuracy"].as_f64().unwrap();
    let nll = result["metrics"]["cloze_nll"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy), "{result}");
    assert!(nll > 0.0 && nll < 60.0, "{result}");
    let curve = fs::read_to_string(run.join("curve.jsonl")).unwrap();
    let evals: Vec<Value> = curve
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|p| p.get("val_loss").is_some_and(|v| !v.is_null()))
        .collect();
    assert!(evals.len() >= 3);
    assert!(
        evals
            .iter()
            .all(|p| p["metrics"]["cloze_nll"].as_f64().is_some()),
        "{curve}"
    );
    // Training taught the model the cloze: the task loss falls from the first evaluation.
    let first = evals[0]["metrics"]["cloze_nll"].as_f64().unwrap();
    assert!(nll < first, "{first} → {nll}");
    // `law: metric` reads a task by default: its accuracy, through its own task loss (one
    // run is too few to fit, and the warning names both).
    let text = fs::read_to_string(&with).unwrap();
    fs::write(
        &with,
        text.replace("fits: []\n", "fits:\n  - { law: metric, form: two_step }\n"),
    )
    .unwrap();
    let out = scalebook(&["fit", with.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 of 1 runs recording cloze_accuracy and cloze_nll"),
        "{}",
        stderr(&out)
    );
    // An edited task file re-keys the runs it scores.
    let mut edited = fs::read_to_string(&task).unwrap();
    edited.push_str("{\"context\": \"ka\", \"choices\": [\" lo\", \" mi\"], \"answer\": 0}\n");
    fs::write(&task, edited).unwrap();
    assert_ne!(plan_keys(&with), with_keys);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_bad_task_file_is_one_line_naming_file_and_line() {
    let dir = fresh_dir("tasks-bad");
    corpus(&dir);
    let good = "{\"context\": \"ka lo\", \"choices\": [\" mi\", \" ne\"], \"answer\": 1}\n";
    let long = format!(
        "{{\"context\": \"{}\", \"choices\": [\" mi\", \" ne\"], \"answer\": 0}}\n",
        "x".repeat(60)
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            format!("{good}{{oops\n").into_bytes(),
            "line 2: not a task item",
        ),
        (
            b"{\"context\": \"a\", \"choices\": [], \"answer\": 0}\n".to_vec(),
            "line 1: `choices` is empty",
        ),
        (
            format!(
                "{good}{good}{{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"answer\": 5}}\n"
            )
            .into_bytes(),
            "line 3: `answer` 5 is out of range",
        ),
        (
            long.into_bytes(),
            "line 1: the context (60 tokens) with its longest choice (3) is longer than the model's context of 48",
        ),
        (
            [good.as_bytes(), b"{\"context\": \"\xff\"}\n"].concat(),
            "line 2: not valid UTF-8",
        ),
        (Vec::new(), "holds no item"),
    ];
    for (bytes, want) in cases {
        fs::write(dir.join("bad.jsonl"), &bytes).unwrap();
        let s = study(&dir, "tasks:\n  - { name: qa, path: bad.jsonl }\n");
        let out = scalebook(&["validate", s.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{want}");
        let text = stderr(&out);
        assert!(
            text.contains("tasks[0].path: ") && text.contains("bad.jsonl: "),
            "{text}"
        );
        assert!(text.contains(want), "{want}: {text}");
        assert_no_crash(&text, &s);
    }
    fs::write(dir.join("ok.jsonl"), good).unwrap();
    for (tasks, want) in [
        (
            "tasks:\n  - { name: Q, path: ok.jsonl }\n",
            "tasks[0].name: `Q` is not a task name",
        ),
        (
            "tasks:\n  - { name: qa, path: ok.jsonl }\n  - { name: qa, path: ok.jsonl }\n",
            "tasks[1].name: `qa` is listed twice",
        ),
        (
            "tasks:\n  - { name: qa, path: missing.jsonl }\n",
            "tasks[0].path: cannot read",
        ),
        (
            "tasks:\n  - { name: qa, path: ok.jsonl, score: max }\n",
            "tasks[0].score",
        ),
        ("tasks: []\n", "tasks: is empty"),
    ] {
        let s = study(&dir, tasks);
        let out = scalebook(&["validate", s.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{tasks}");
        assert!(stderr(&out).contains(want), "{want}: {}", stderr(&out));
    }
    // Text items need a tokenizer: a synthetic language takes token ids only.
    let synthetic = dir.join("synthetic.yaml");
    fs::write(
        &synthetic,
        "version: 1\nname: syn\ndata: { vocab: 16, order: 1 }\n\
         model: { context: 8, sizes: [{ layers: 1, d_model: 16, heads: 2 }] }\n\
         tokens: [1024]\ntrain: { batch: 4, eval_tokens: 64 }\n\
         tasks:\n  - { name: qa, path: ok.jsonl }\n",
    )
    .unwrap();
    let out = scalebook(&["validate", synthetic.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("line 1: gives text, and this study's data has no tokenizer"),
        "{}",
        stderr(&out)
    );
    fs::write(
        dir.join("ok.jsonl"),
        "{\"context\": [1, 2], \"choices\": [[3], [4]], \"answer\": 0}\n",
    )
    .unwrap();
    let out = scalebook(&["validate", synthetic.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The cloze task needs a text corpus.
    let out = scalebook(&[
        "task",
        "cloze",
        synthetic.to_str().unwrap(),
        "--out",
        dir.join("c.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the cloze task reads a text corpus"),
        "{}",
        stderr(&out)
    );
    fs::remove_dir_all(dir).unwrap();
}
