//! The conformance studies (`conformance/*.yaml`): published datasets imported with
//! `results:` and gated on the paper's numbers with `checks:`. Each runs with its data path
//! pointed at the reference data (`$SCALEBOOK_REFERENCE_DATA`), and must pass every check.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::support::{assert_no_crash, fit_json, fresh_dir, scalebook, stderr};

#[test]
fn every_conformance_study_meets_its_papers_numbers() {
    let Some(data) = scalebook::testing::reference_data() else {
        scalebook::testing::skip(
            "every_conformance_study_meets_its_papers_numbers",
            "no reference data (set SCALEBOOK_REFERENCE_DATA, or put shared/ beside the repository)",
        );
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance");
    let mut studies: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    studies.sort();
    assert!(studies.len() >= 5, "{studies:?}");
    let dir = fresh_dir("conformance");
    for path in studies {
        let text = fs::read_to_string(&path).unwrap();
        let text = text.replace("../../shared/data", data.to_str().unwrap());
        let name = path.file_name().unwrap().to_str().unwrap();
        let study = dir.join(name);
        fs::write(&study, text).unwrap();
        let store = dir.join("store");
        let book = dir.join("book");
        let out = scalebook(&[
            "report",
            study.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            "--book",
            book.to_str().unwrap(),
        ]);
        let err = stderr(&out);
        assert_no_crash(&err, &study);
        assert_eq!(out.status.code(), Some(0), "{name}: {err}");
        assert!(!err.contains("check failed"), "{name}: {err}");
        let checks = err.matches("check passed").count();
        assert!(checks >= 2, "{name}: {err}");
        // The law's numbers are in fits.json under their law's name.
        let stem = name.trim_end_matches(".yaml");
        let fits: Value = serde_json::from_str(
            &fs::read_to_string(store.join(format!("studies/{stem}/fits.json"))).unwrap(),
        )
        .unwrap();
        assert!(
            fits["overtrain"]["holdout"]["rel_error_max"].is_f64()
                || fits["data_constrained"]["holdout"]["rel_error_mean"].is_f64()
                || fits["chinchilla"]["vpnls"]["free"]["sse"].is_f64()
                || fits["metric"]["holdout"]["mean_abs_error"].is_f64()
                || fits["decisions"]["single_scale"]["share"].is_f64(),
            "{fits}"
        );
    }
}

/// `results.where` keeps the matching rows only, and names a column the table lacks.
#[test]
fn results_where_filters_rows_and_names_a_missing_column() {
    let dir = fresh_dir("where");
    let csv = dir.join("runs.csv");
    let mut rows = String::from("run,set,params,tokens,loss\n");
    for (i, set) in ["a", "b"].iter().enumerate() {
        for n in [1e6, 4e6, 1.6e7] {
            for d in [2e7, 8e7, 3.2e8] {
                let loss = 1.7 + i as f64 + 400.0 / f64::powf(n, 0.34) + 410.0 / f64::powf(d, 0.28);
                rows.push_str(&format!("{set}-{n:e}-{d:e},{set},{n},{d},{loss}\n"));
            }
        }
    }
    fs::write(&csv, rows).unwrap();
    let study_named = |filter: &str, name: &str| {
        let path = dir.join("w.yaml");
        fs::write(
            &path,
            format!(
                "version: 1\nname: w\nresults:\n  path: runs.csv\n  columns: {{ params: params, tokens: tokens, loss: loss{name} }}\n  where: {filter}\nfits:\n  - {{ law: chinchilla, bootstrap: 0 }}\n  - {{ law: overtrain, bootstrap: 0 }}\nholdout: {{ largest: 1 }}\n"
            ),
        )
        .unwrap();
        path
    };
    let study = |filter: &str| study_named(filter, "");
    let store = dir.join("store");
    let path = study("{ set: b }");
    let out = scalebook(&[
        "fit",
        path.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fits: Value =
        serde_json::from_str(&fs::read_to_string(store.join("studies/w/fits.json")).unwrap())
            .unwrap();
    assert_eq!(fits["points"], 9);
    // Set b's floor is 2.7: the free-E law finds it.
    let e = fits["chinchilla"]["E"].as_f64().unwrap();
    assert!((e - 2.7).abs() < 1e-3, "{e}");
    // Imported rows are named by their line unless a column names them.
    let held = &fits["holdout"]["points"][0]["name"];
    assert_eq!(held.as_str().unwrap(), "row 16", "{held}");
    // A list keeps the rows matching any of its values; `columns.name` names them.
    let path = study_named(
        "{ set: b, run: [b-1e6-2e7, b-1e6-8e7, b-1e6-3.2e8, b-4e6-2e7, b-4e6-8e7, b-4e6-3.2e8, b-1.6e7-2e7, b-1.6e7-3.2e8, a-1e6-2e7] }",
        ", name: run",
    );
    let fits = fit_json(&path, &store);
    assert_eq!(fits["points"], 8);
    let held: Vec<&str> = fits["holdout"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(held, ["b-1.6e7-2e7", "b-1.6e7-3.2e8"]);
    for (filter, name, words) in [
        ("{ grade: b }", "", "results.where.grade: no column `grade`"),
        ("{ set: c }", "", "results.where: no row has set = c"),
        (
            "{ run: [a-1e6-2e7, a-1e6-2e9] }",
            "",
            "results.where.run: no row has `a-1e6-2e9` in column `run`",
        ),
        (
            "{ set: a }",
            ", name: set",
            "row 2, column `set`: `a` names row 1 too; run names must be unique",
        ),
        (
            "{ set: a }",
            ", name: label",
            "results.columns.name: no column `label`",
        ),
    ] {
        let path = study_named(filter, name);
        let out = scalebook(&[
            "fit",
            path.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
        ]);
        let err = stderr(&out);
        assert_no_crash(&err, &path);
        assert_eq!(out.status.code(), Some(2), "{filter}: {err}");
        assert!(err.contains(words), "{filter}: {err}");
        assert!(err.contains("runs.csv"), "{filter}: {err}");
    }
}

/// `variants:` compares imported runs' recipes: every bad request is one line naming it.
#[test]
fn every_bad_variants_request_is_one_line_naming_it() {
    let dir = fresh_dir("variants-bad");
    fs::write(
        dir.join("r.csv"),
        "run,set,params,tokens,loss,arc\na,x,1e6,1e7,3.0,0.3\nb,y,1e6,1e7,3.1,0.2\n",
    )
    .unwrap();
    let head = "version: 1\nname: v\nresults:\n  path: r.csv\n  columns: { name: run, params: params, tokens: tokens, loss: loss }\n";
    for (variants, want) in [
        (
            "variants: { column: set, by: accuracy }\n",
            "variants.by: `accuracy` is not what decisions compare",
        ),
        (
            "variants: { column: set, by: error }\n",
            "variants.by: `error` averages imported metrics",
        ),
        (
            "variants: { column: set, metrics: [arc] }\n",
            "variants.metrics: applies only with `by: error`",
        ),
        (
            "variants: { column: set, target: { params: -1, tokens: 1e9 } }\n",
            "variants.target.params: must be a positive number",
        ),
        (
            "variants: { column: set, colour: red }\n",
            "variants.colour: unknown key `colour`",
        ),
    ] {
        let study = dir.join("v.yaml");
        fs::write(&study, format!("{head}{variants}")).unwrap();
        let out = scalebook(&["validate", study.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{variants}");
        assert!(stderr(&out).contains(want), "{want}: {}", stderr(&out));
    }
    // A training study's recipes are separate studies.
    let trained = dir.join("t.yaml");
    fs::write(
        &trained,
        "version: 1\nname: t\nmodel: { context: 8, sizes: [{ layers: 1, d_model: 16, heads: 2 }] }\n\
         tokens: [1024]\nvariants: { column: set }\n",
    )
    .unwrap();
    let out = scalebook(&["validate", trained.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("variants: compares recipes of imported runs"),
        "{}",
        stderr(&out)
    );
    // A column the table lacks is named when the runs are read.
    let study = dir.join("v.yaml");
    fs::write(&study, format!("{head}variants: {{ column: recipe }}\n")).unwrap();
    let out = scalebook(&["fit", study.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("variants.column: no column `recipe` in the table"),
        "{}",
        stderr(&out)
    );
    fs::remove_dir_all(dir).unwrap();
}
