//! Repeated data: runs trained on a corpus record its training split as their unique tokens,
//! the fits name the runs past four epochs and fit the data-constrained law beside the plain
//! one; studies that cannot know their unique tokens are refused naming the field.

use std::fs;

use serde_json::Value;

use crate::support::{assert_no_crash, fit_json, fresh_dir, scalebook, stderr};

/// A few kilobytes of word-like text from a fixed generator: small enough that every run
/// below repeats it.
fn corpus() -> String {
    let words = [
        "the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away",
    ];
    let mut state: u64 = 7;
    let mut out = String::new();
    while out.len() < 6000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.push_str(words[(state >> 33) as usize % words.len()]);
        out.push(if (state >> 20).is_multiple_of(9) {
            '\n'
        } else {
            ' '
        });
    }
    out
}

#[test]
fn a_small_corpus_repeats_and_the_data_constrained_law_is_fitted() {
    let dir = fresh_dir("repeated");
    fs::write(dir.join("corpus.txt"), corpus()).unwrap();
    let study = dir.join("study.yaml");
    fs::write(
        &study,
        "version: 1\nname: repeated\nseed: 1\n\
         data: { source: text, paths: [corpus.txt], val_fraction: 0.1 }\n\
         model:\n  context: 16\n  sizes:\n    - { layers: 1, d_model: 8, heads: 2 }\n\
         \x20   - { layers: 1, d_model: 16, heads: 2 }\n    - { layers: 1, d_model: 24, heads: 2 }\n\
         tokens: [8e3, 2.4e4, 7.2e4]\n\
         train: { batch: 8, lr: 1e-2, eval_tokens: 256, eval_every: 100 }\n\
         fits:\n  - { law: chinchilla, bootstrap: 0 }\n",
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
    let err = stderr(&out);
    assert_no_crash(&err, &study);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // Every record knows its pool: the corpus's training split (90 % of its bytes).
    let split = (corpus().len() as f64 * 0.9) as u64;
    let mut records = 0;
    for entry in fs::read_dir(store.join("runs")).unwrap() {
        let path = entry.unwrap().path().join("result.json");
        let result: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(result["unique_tokens"].as_u64(), Some(split), "{result}");
        records += 1;
    }
    assert_eq!(records, 9);
    let fits: Value = serde_json::from_str(
        &fs::read_to_string(store.join("studies/repeated/fits.json")).unwrap(),
    )
    .unwrap();
    let codes: Vec<&str> = fits["warning_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(codes.contains(&"data_repeated"), "{codes:?}");
    let warning = fits["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "data_repeated")
        .unwrap();
    // 2.4e4 and 7.2e4 tokens are past four epochs of a 5,400-token pool: six runs named.
    assert_eq!(warning["values"]["past_4_epochs"], 6.0, "{warning}");
    assert_eq!(warning["values"]["runs"], 9.0, "{warning}");
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("l1-d24-t7.2e4")
    );
    // Fitted beside the plain law though `fits:` did not ask for it.
    let d = &fits["data_constrained"];
    assert_eq!(d["points"], 9, "{d}");
    assert_eq!(d["repeated"], 9, "{d}");
    assert!(d["objective"].as_f64().unwrap() <= d["chinchilla_objective"].as_f64().unwrap());
    let chapter = fs::read_to_string(dir.join("book/src/repeated/index.md")).unwrap();
    assert!(chapter.contains("data_repeated"), "{chapter}");
    // The law's own panels in the residual and extrapolation charts.
    for title in [
        "Residuals, data-constrained law",
        "Repeated data: the data-constrained law",
    ] {
        assert!(chapter.contains(title), "{title}: {chapter}");
    }
    // The runs frame carries each run's pool and its epochs.
    let frame =
        scalebook::store::collect::read_parquet(&store.join("studies/repeated/runs.parquet"))
            .unwrap();
    let unique = frame
        .column("unique_tokens")
        .unwrap()
        .u64()
        .unwrap()
        .clone();
    let epochs = frame.column("epochs").unwrap().f64().unwrap().clone();
    let tokens = frame.column("tokens").unwrap().u64().unwrap().clone();
    assert_eq!(frame.height(), 9);
    for i in 0..frame.height() {
        assert_eq!(unique.get(i), Some(split));
        let want = tokens.get(i).unwrap() as f64 / split as f64;
        assert!((epochs.get(i).unwrap() - want).abs() < 1e-12, "{i}: {want}");
    }
    // `final.unique_tokens` caps the pool the final budget's allocation draws from: the law
    // answers how many epochs of it are worth training (the same runs, refitted).
    let text = fs::read_to_string(&study).unwrap().replace(
        "fits:\n  - { law: chinchilla, bootstrap: 0 }\n",
        "fits:\n  - { law: chinchilla, bootstrap: 0 }\n  - { law: data_constrained, bootstrap: 0 }\n\
         final: { budget: 1e9, unique_tokens: 2000 }\n",
    );
    assert!(text.contains("unique_tokens: 2000"));
    fs::write(&study, text).unwrap();
    let fits = fit_json(&study, &store);
    let a = fits["data_constrained"]["allocation"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["compute"] == 1e9)
        .unwrap_or_else(|| panic!("{}", fits["data_constrained"]));
    assert_eq!(a["unique_tokens"], 2000.0, "{a}");
    let (d, epochs) = (
        a["capped_d_opt"].as_f64().unwrap(),
        a["capped_epochs"].as_f64().unwrap(),
    );
    assert!((epochs - d / 2000.0).abs() < 1e-9 * epochs, "{a}");
    assert!(epochs > 1.0, "{a}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unique_tokens_unknown_is_refused_naming_the_field() {
    let dir = fresh_dir("repeated-bad");
    fs::write(
        dir.join("runs.csv"),
        "n,d,loss,epochs\n1e6,1e8,3.1,1\n4e6,1e8,2.9,2\n1.6e7,1e8,2.8,4\n",
    )
    .unwrap();
    let cases = [
        (
            "results:\n  path: runs.csv\n  columns: { params: n, tokens: d, loss: loss }\nfits:\n  - { law: data_constrained }\n",
            "fits[0].law",
            "results.columns.unique_tokens",
        ),
        (
            "results:\n  path: runs.csv\n  columns: { params: n, tokens: d, loss: loss }\nholdout: { epochs_above: 2 }\n",
            "holdout.epochs_above",
            "results.columns.epochs",
        ),
        (
            "results:\n  path: runs.csv\n  columns: { params: n, tokens: d, loss: loss, epochs: epochs, unique_tokens: d }\n",
            "results.columns.epochs",
            "not both",
        ),
        (
            "results:\n  path: runs.csv\n  columns: { params: n, tokens: d, loss: loss, epochs: epochs }\nholdout: { epochs_above: 2, largest: 1 }\n",
            "holdout.epochs_above",
            "not several",
        ),
        (
            "data: { source: synthetic, vocab: 32 }\nmodel: { context: 8, sizes: [{ layers: 1, d_model: 8, heads: 2 }] }\ntokens: [1e3]\nfits:\n  - { law: data_constrained }\n",
            "fits[0].law",
            "synthetic language draws fresh tokens",
        ),
        (
            "data: { source: text, paths: [c.txt] }\nmodel: { context: 8, sizes: [{ layers: 1, d_model: 8, heads: 2 }] }\ntokens: [1e3]\nfinal: { budget: 1e9, unique_tokens: 1e6 }\n",
            "final.unique_tokens",
            "law: data_constrained",
        ),
    ];
    for (body, field, words) in cases {
        let study = dir.join("s.yaml");
        fs::write(&study, format!("version: 1\nname: s\n{body}")).unwrap();
        let out = scalebook(&["validate", study.to_str().unwrap()]);
        let err = stderr(&out);
        assert_no_crash(&err, &study);
        assert_eq!(out.status.code(), Some(2), "{body}: {err}");
        assert!(err.contains(field) && err.contains(words), "{body}: {err}");
    }
    // A pool column that holds a bad cell names its row.
    fs::write(
        dir.join("runs.csv"),
        "n,d,loss,epochs\n1e6,1e8,3.1,1\n4e6,1e8,2.9,-2\n",
    )
    .unwrap();
    let study = dir.join("s.yaml");
    fs::write(
        &study,
        "version: 1\nname: s\nresults:\n  path: runs.csv\n  columns: { params: n, tokens: d, loss: loss, epochs: epochs }\nfits:\n  - { law: chinchilla, bootstrap: 0 }\n",
    )
    .unwrap();
    let out = scalebook(&[
        "fit",
        study.to_str().unwrap(),
        "--store",
        dir.join("st").to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_no_crash(&err, &study);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("row 2, column `epochs`"), "{err}");
    fs::remove_dir_all(dir).unwrap();
}
