//! `holdout.leave_one_out: tokens`: every law refitted without each token count predicts it,
//! in `fits.json` and as a column of the laws table; too few token counts say so.

use std::fs;

use serde_json::Value;

use crate::support::{fresh_dir, mock_study, stderr, stdout, with_mock};

fn study(dir: &std::path::Path, tokens: &str) -> std::path::PathBuf {
    mock_study(
        dir,
        "study",
        &[
            ("tokens: [2e4, 5e4, 1e5]", &format!("tokens: {tokens}")),
            (
                "holdout: { largest: 1 }",
                "holdout: { largest: 1, leave_one_out: tokens }",
            ),
        ],
    )
}

#[test]
fn each_token_count_is_predicted_by_the_laws_fitted_without_it() {
    let dir = fresh_dir("loo");
    let store = dir.join("store");
    let book = dir.join("book");
    let path = study(&dir, "[2e4, 5e4, 1e5, 2e5]");
    let law = "1.5,300,500,0.3,0.35,0";
    let out = with_mock(
        &[
            "run",
            path.to_str().unwrap(),
            "--book",
            book.to_str().unwrap(),
        ],
        law,
        &store,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fits: Value = serde_json::from_str(
        &fs::read_to_string(store.join("studies/report-mock/fits.json")).unwrap(),
    )
    .unwrap();
    let l = &fits["leave_one_out"];
    let folds = l["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 4, "{l}");
    for (f, d) in folds.iter().zip([2e4, 5e4, 1e5, 2e5]) {
        // Token counts trained are whole steps of batch × context.
        assert!(
            (f["tokens"].as_f64().unwrap() / d - 1.0).abs() < 0.01,
            "{f}"
        );
        assert_eq!(f["fitted_token_counts"], 3);
        assert_eq!(f["runs"], 5);
    }
    // Noise-free points of a Chinchilla law: the free-E law predicts every left-out count.
    let free = l["laws"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["form"] == "free_e")
        .unwrap();
    assert!(free["max_error"].as_f64().unwrap() < 1e-3, "{l}");
    // The held-out largest size is untouched by it.
    assert_eq!(fits["holdout"]["kind"], "largest");
    let chapter = fs::read_to_string(book.join("src/report-mock/index.md")).unwrap();
    assert!(
        chapter.contains("token leave-one-out error (mean / worst)"),
        "{chapter}"
    );
    assert!(
        chapter.contains("**Leave one token count out**"),
        "{chapter}"
    );

    // Three token counts leave no fold: the fits say why instead.
    let path = study(&dir, "[2e4, 5e4, 1e5]");
    let out = with_mock(&["run", path.to_str().unwrap(), "--no-report"], law, &store);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = with_mock(
        &["fit", path.to_str().unwrap(), "--format", "json"],
        law,
        &store,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fits: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(fits.get("leave_one_out").is_none());
    let warned = fits["warnings"].as_array().unwrap().iter().any(|w| {
        w["message"]
            .as_str()
            .unwrap()
            .contains("leaving out a token count needs more than 3")
    });
    assert!(warned, "{}", fits["warnings"]);
    fs::remove_dir_all(dir).unwrap();
}
