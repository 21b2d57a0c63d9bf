//! `scalebook validate`: valid studies exit 0; each invalid fixture exits 2 with one line per
//! problem that names the file and the field, and never panics.
//!
//! Each file in `tests/fixtures/invalid/` starts with `# expect: TEXT` lines; every TEXT must
//! appear in stderr. Adding a fixture adds a case.

use std::fs;
use std::path::Path;

use crate::support::{assert_no_crash, fixture, scalebook, stderr, stdout};

fn expectations(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_invalid_fixture_exits_2_with_its_message() {
    let dir = fixture("invalid");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "only {} invalid fixtures", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let rel = format!(
            "tests/fixtures/invalid/{}",
            path.file_name().unwrap().to_string_lossy()
        );
        let out = scalebook(&["validate", &rel]);
        let err = stderr(&out);
        assert_no_crash(&err, path);
        if out.status.code() != Some(2) {
            failures.push(format!(
                "{rel}: exit {:?}, stderr:\n{err}",
                out.status.code()
            ));
            continue;
        }
        let expected = expectations(path);
        assert!(!expected.is_empty(), "{rel} has no `# expect:` line");
        for want in expected {
            if !err.contains(&want) {
                failures.push(format!("{rel}: stderr lacks `{want}`:\n{err}"));
            }
        }
        // One clear line per problem, each naming the file.
        for line in err.lines() {
            if !line.starts_with(&rel) {
                failures.push(format!("{rel}: line does not name the file: {line}"));
            }
        }
        if !stdout(&out).is_empty() {
            failures.push(format!("{rel}: printed to stdout on failure"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn valid_studies_exit_0() {
    for name in [
        "reports/quickstart.yaml",
        "tests/fixtures/valid/minimal.yaml",
        "tests/fixtures/valid/text_corpus.yaml",
        "tests/fixtures/valid/token_file.yaml",
        "tests/fixtures/valid/isoflop.yaml",
        "tests/fixtures/valid/imported.yaml",
    ] {
        let out = scalebook(&["validate", name]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        assert!(
            stdout(&out).starts_with(&format!("{name}: ok")),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn quickstart_summary_counts_its_runs() {
    let out = scalebook(&["validate", "reports/quickstart.yaml"]);
    let text = stdout(&out);
    assert!(
        text.contains("12 runs (4 sizes × 3 token counts)"),
        "{text}"
    );
}

#[test]
fn unreadable_and_non_utf8_files_exit_2() {
    let out = scalebook(&["validate", "tests/fixtures/no-such-study.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "tests/fixtures/no-such-study.yaml: cannot read study file: no such file"
    );

    let dir = std::env::temp_dir().join(format!("scalebook-utf8-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("latin1.yaml");
    fs::write(&path, b"version: 1\nname: caf\xe9\n").unwrap();
    let out = scalebook(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("latin1.yaml:2:10: the study file is not valid UTF-8 (byte offset 20)"),
        "{}",
        stderr(&out)
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn warnings_do_not_fail_validation() {
    // Budgets where fewer than 3 sizes fall in the auto bracket warn but stay valid.
    let dir = std::env::temp_dir().join(format!("scalebook-warn-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("warn.yaml");
    fs::write(
        &path,
        "version: 1\nname: warn\nmodel: { context: 64, sizes: [{ layers: 2, d_model: 64, heads: 4 }] }\n\
         isoflop: { budgets: [1e12] }\n",
    )
    .unwrap();
    let out = scalebook(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(":4:22: warning: isoflop.budgets[0]: only 1 size(s)"),
        "{}",
        stderr(&out)
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn usage_errors_exit_2() {
    let out = scalebook(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = scalebook(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}
