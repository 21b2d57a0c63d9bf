//! `scalebook run`/`report` writing the book: every chart and table, the built HTML in a real
//! browser, byte-identical re-renders, `checks:` → exit 4, escaping, SUMMARY.md with two
//! studies, and template errors naming their section.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{assert_no_crash, fresh_dir, scalebook, stderr};

const STUDY: &str = "tests/fixtures/valid/report_mock.yaml";
const CHARTS: [&str; 10] = [
    "loss_vs_params",
    "loss_vs_tokens",
    "loss_vs_compute",
    "learning_curves",
    "frontier",
    "isoflop",
    "residuals",
    "extrapolation",
    "allocation",
    "cost",
];

fn run_mock(study: &Path, dir: &Path) -> std::process::Output {
    let store = dir.join("store");
    let book = dir.join("book");
    scalebook(&[
        "run",
        study.to_str().unwrap(),
        "--executor",
        "mock",
        "--store",
        store.to_str().unwrap(),
        "--book",
        book.to_str().unwrap(),
    ])
}

fn report(study: &Path, dir: &Path) -> std::process::Output {
    let store = dir.join("store");
    let book = dir.join("book");
    scalebook(&[
        "report",
        study.to_str().unwrap(),
        "--executor",
        "mock",
        "--store",
        store.to_str().unwrap(),
        "--book",
        book.to_str().unwrap(),
    ])
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// A copy of a fixture study with text replaced, written into `dir`.
fn edited(dir: &Path, from: &str, replace: &[(&str, &str)]) -> PathBuf {
    let mut text = fs::read_to_string(crate::support::root().join(from)).unwrap();
    for (a, b) in replace {
        assert!(text.contains(a), "fixture lacks `{a}`");
        text = text.replacen(a, b, 1);
    }
    let path = dir.join("study.yaml");
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn run_writes_every_chart_and_table_and_builds_the_book() {
    let dir = fresh_dir("report-all");
    let out = run_mock(Path::new(STUDY), &dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let chapter = dir.join("book/src/report-mock");
    let index = fs::read_to_string(chapter.join("index.md")).unwrap();
    let report_md = fs::read_to_string(chapter.join("report.md")).unwrap();
    // Mock numbers say so: in the title, at the top, under every table and chart.
    for page in [&index, &report_md] {
        assert!(
            page.starts_with("# Report test study (mock data)\n"),
            "{page}"
        );
        assert!(page.contains("**🧪 Mock data: nothing in this chapter was trained.**"));
        let notes = page
            .matches("*Mock data: the mock executor reported these numbers from a law")
            .count();
        let tables = page.matches("\n## ").count();
        assert!(notes >= 5, "{notes} notes under {tables} sections");
        assert!(
            page.contains("Mock data — Final validation loss"),
            "chart captions"
        );
    }
    for id in CHARTS {
        let svg = fs::read_to_string(chapter.join(format!("figures/{id}.svg"))).unwrap();
        assert!(
            svg.contains("<polyline") || svg.contains("<circle"),
            "{id} is empty"
        );
        assert!(
            index.contains(&format!("id=\"chart-{id}\"")),
            "{id} not inlined"
        );
        assert!(
            report_md.contains(&format!("](figures/{id}.svg)")),
            "{id} not linked"
        );
    }
    for heading in [
        "## Runs",
        "## Fitted laws",
        "## Hold-out check",
        "## Allocation",
        "## Final compute-optimal run",
        "## Warnings",
        "## Checks",
        "## Reproducibility",
    ] {
        assert!(index.contains(heading), "missing {heading}");
        assert!(report_md.contains(heading), "report.md missing {heading}");
    }
    // The runs table lists all 15 grid runs; the final table both final models.
    assert!(index.matches("| `l").count() >= 15 + 2);
    assert!(index.contains("`l1-d16-baseline`"));
    assert!(index.contains("**Predicted "), "predicted-vs-measured line");
    // GitHub comment: images only, no inline SVG.
    assert!(!report_md.contains("<svg"));
    // Appendix facts.
    assert!(index.contains("sha256 `"));
    assert!(
        index.contains("- **Produced by**: `mock/E=1.69,"),
        "the producer"
    );
    assert!(
        index.contains("- **Fitted by**: `fit/"),
        "the fitting code's version"
    );
    assert!(index.contains("scalebook run ") && index.contains("scalebook verify "));
    // Nothing of the renderer: no build commit, no toolchain.
    assert!(
        !index.contains("rustc") && !index.contains("git `"),
        "renderer facts"
    );
    // The HTML was built in-process, with the figures copied next to it.
    let html = fs::read_to_string(dir.join("book/book/report-mock/index.html")).unwrap();
    assert!(html.matches("<svg").count() >= CHARTS.len());
    assert!(dir.join("book/book/report-mock/figures/cost.svg").is_file());
    let summary = fs::read_to_string(dir.join("book/src/SUMMARY.md")).unwrap();
    assert!(summary.contains("- [Report test study](report-mock/index.md)"));
}

/// A final run is held to the interval predicted for one run: the law's bootstrap band
/// widened by the fitted runs' scatter about the law. On the mock grid (0.5 % noise about a
/// known law whose floor the grid places) that interval contains the law's band, `final.within_ci` reads it, and the
/// final table shows both.
#[test]
fn the_final_run_is_held_to_the_interval_for_one_run() {
    let dir = fresh_dir("report-one-run-interval");
    let study = dir.join("study.yaml");
    let text = fs::read_to_string(STUDY).unwrap().replace(
        "checks:\n",
        "checks:\n  - \"final.run.predicted_ci[0] < final.run.law_ci[0] and \
         final.run.law_ci[1] < final.run.predicted_ci[1]\"\n  - \"final.within_ci == \
         (final.run.predicted_ci[0] <= final.run.measured and \
         final.run.measured <= final.run.predicted_ci[1])\"\n  \
         - \"holdout.points | selectattr('predicted_ci') | list | length == \
         holdout.points | length\"\n",
    );
    fs::write(&study, text).unwrap();
    let (store, book) = (dir.join("store"), dir.join("book"));
    let out = scalebook(&[
        "run",
        study.to_str().unwrap(),
        "--executor",
        "mock",
        "--mock-law",
        "1.5,30,60,0.35,0.4,0.005",
        "--store",
        store.to_str().unwrap(),
        "--book",
        book.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let index = fs::read_to_string(dir.join("book/src/report-mock/index.md")).unwrap();
    assert!(
        index.contains("the law's interval |  interval for one run |"),
        "final table columns"
    );
    assert!(
        index.contains("% interval for one run. "),
        "the verdict line"
    );
    // Residuals in fits.json: one per fitted run.
    let fits: Value =
        serde_json::from_slice(&fs::read(dir.join("store/studies/report-mock/fits.json")).unwrap())
            .unwrap();
    let c = &fits["chinchilla"];
    assert_eq!(
        c["residuals"].as_array().unwrap().len() as u64,
        c["points"].as_u64().unwrap()
    );
}

#[test]
fn report_twice_gives_the_same_bytes() {
    let dir = fresh_dir("report-determinism");
    assert_eq!(run_mock(Path::new(STUDY), &dir).status.code(), Some(0));
    let first = snapshot(&dir.join("book/src"));
    let html_first = fs::read(dir.join("book/book/report-mock/index.html")).unwrap();
    // Force a refit too: fits.json gone, so `report` fits again from the store.
    fs::remove_file(dir.join("store/studies/report-mock/fits.json")).unwrap();
    let out = report(Path::new(STUDY), &dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("fitting"), "refit announced");
    let second = snapshot(&dir.join("book/src"));
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &first {
        assert!(
            bytes == &second[path],
            "{} differs between renders",
            path.display()
        );
    }
    let html_second = fs::read(dir.join("book/book/report-mock/index.html")).unwrap();
    assert!(html_first == html_second, "HTML differs between renders");
}

#[test]
fn a_failed_check_exits_4_after_writing_the_report() {
    let dir = fresh_dir("report-check");
    let study = edited(
        &dir,
        STUDY,
        &[(
            "\"fits.chinchilla.alpha > 0\"",
            "\"fits.chinchilla.alpha > 5\"",
        )],
    );
    let out = run_mock(&study, &dir);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("check failed: fits.chinchilla.alpha > 5"),
        "{err}"
    );
    assert!(err.contains("1 of 2 checks failed"), "{err}");
    let index = fs::read_to_string(dir.join("book/src/report-mock/index.md")).unwrap();
    assert!(index.contains("❌ fail"));
    assert!(index.contains("✅ pass"));
    // `report` alone gives the same verdict.
    assert_eq!(report(&study, &dir).status.code(), Some(4));
    // A check that names something the fits lack fails, saying why.
    let study = edited(
        &dir,
        STUDY,
        &[("\"fits.chinchilla.alpha > 0\"", "\"fits.isoflop.a > 0\"")],
    );
    let out = report(&study, &dir);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("cannot be evaluated"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn study_text_is_escaped_in_every_page() {
    let dir = fresh_dir("report-xss");
    let study = edited(
        &dir,
        STUDY,
        &[
            (
                "title: Report test study",
                "title: \"<script>alert('t')</script> *x*\"",
            ),
            (
                "description: Mock losses from a known law, to exercise every chart and table.",
                "description: \"<img src=x onerror=alert(1)>\"",
            ),
            (
                "checks:",
                "report:\n  sections:\n    - text: \"Title: {{ study.title }} / {{ study.description }} / {{ '<b>ok</b>' | safe }}\"\n    - chart: cost\ncheck_placeholder:",
            ),
        ],
    );
    // Keep the study valid: drop the placeholder key and the checks under it.
    let text = fs::read_to_string(&study).unwrap();
    let text = text.split("check_placeholder:").next().unwrap().to_string();
    fs::write(&study, text).unwrap();
    let out = run_mock(&study, &dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for page in ["book/book/report-mock/index.html", "book/book/index.html"] {
        let html = fs::read_to_string(dir.join(page)).unwrap();
        assert!(!html.contains("<script>alert"), "{page} runs the title");
        assert!(
            !html.contains("<img src=x"),
            "{page} has the injected image"
        );
    }
    let html = fs::read_to_string(dir.join("book/book/report-mock/index.html")).unwrap();
    assert!(
        html.contains("&lt;script&gt;alert"),
        "the title shows as text"
    );
    assert!(html.contains("<b>ok</b>"), "`| safe` is passed through");
}

#[test]
fn two_studies_share_one_summary() {
    let dir = fresh_dir("report-two");
    let book = dir.join("book");
    fs::create_dir_all(book.join("src")).unwrap();
    fs::write(book.join("book.toml"), "[book]\ntitle = \"t\"\n").unwrap();
    fs::write(
        book.join("src/SUMMARY.md"),
        "# Summary\n\n[Intro](intro.md)\n\n# Studies\n\n- [Old](old/index.md)\n",
    )
    .unwrap();
    fs::write(book.join("src/intro.md"), "# Intro\n").unwrap();
    fs::create_dir_all(book.join("src/old")).unwrap();
    fs::write(book.join("src/old/index.md"), "# Old\n").unwrap();
    assert_eq!(run_mock(Path::new(STUDY), &dir).status.code(), Some(0));
    let second = edited(
        &dir,
        STUDY,
        &[
            ("name: report-mock", "name: second"),
            ("title: Report test study", "title: Second"),
        ],
    );
    let out = run_mock(&second, &dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = fs::read_to_string(book.join("src/SUMMARY.md")).unwrap();
    assert_eq!(
        summary,
        "# Summary\n\n[Intro](intro.md)\n\n# Studies\n\n- [Old](old/index.md)\n\
         - [Report test study](report-mock/index.md)\n- [Second](second/index.md)\n"
    );
    // Re-rendering the first leaves the file as it is.
    assert_eq!(report(Path::new(STUDY), &dir).status.code(), Some(0));
    assert_eq!(
        fs::read_to_string(book.join("src/SUMMARY.md")).unwrap(),
        summary
    );
    for page in [
        "old/index.html",
        "report-mock/index.html",
        "second/index.html",
    ] {
        assert!(book.join("book").join(page).is_file(), "{page}");
    }
    // A chapter another study lists but that is missing fails the command.
    fs::remove_file(book.join("src/old/index.md")).unwrap();
    let out = report(Path::new(STUDY), &dir);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("old/index.md"), "{}", stderr(&out));
}

#[test]
fn template_errors_name_the_section() {
    let dir = fresh_dir("report-template");
    let bad_syntax = edited(
        &dir,
        STUDY,
        &[(
            "checks:",
            "report:\n  sections:\n    - chart: cost\n    - text: \"{% if %}\"\nchecks:",
        )],
    );
    let out = scalebook(&["validate", bad_syntax.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("report.sections[1].text: template error"),
        "{err}"
    );
    assert_no_crash(&err, &bad_syntax);
    let unknown = edited(
        &dir,
        STUDY,
        &[(
            "checks:",
            "report:\n  sections:\n    - text: \"{{ fits.chinchilla.gamma }}\"\nchecks:",
        )],
    );
    let out = run_mock(&unknown, &dir);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("report.sections[0]: template error"), "{err}");
    assert!(err.contains("undefined"), "{err}");
    assert_no_crash(&err, &unknown);
    let bad_check = edited(
        &dir,
        STUDY,
        &[("\"fits.chinchilla.alpha > 0\"", "\"alpha >\"")],
    );
    let out = scalebook(&["validate", bad_check.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("checks[0]: expression error"),
        "{}",
        stderr(&out)
    );
}

/// Debian's chromium (installed by .ci/run, which also forbids skipping: see
/// `scalebook::testing`).
fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("SCALEBOOK_CHROMIUM").map(PathBuf::from),
        Some(PathBuf::from("/usr/bin/chromium")),
        Some(PathBuf::from("/usr/bin/chromium-browser")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

fn headless(browser: &Path, profile: &Path, extra: &[&str], page: &Path) -> std::process::Output {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium starts")
}

#[test]
fn the_book_renders_in_a_browser() {
    let Some(browser) = chromium() else {
        scalebook::testing::skip(
            "the_book_renders_in_a_browser",
            "chromium is not installed (apt install chromium; .ci/run installs it)",
        );
        return;
    };
    let dir = fresh_dir("report-browser");
    assert_eq!(run_mock(Path::new(STUDY), &dir).status.code(), Some(0));
    let page = dir.join("book/book/report-mock/index.html");
    let out = headless(&browser, &dir.join("profile"), &["--dump-dom"], &page);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("Report test study"),
        "DOM dump failed: {}",
        stderr(&out)
    );
    let figures: Vec<&str> = dom
        .split("<figure class=\"scalebook-chart\"")
        .skip(1)
        .map(|f| f.split("</figure>").next().unwrap())
        .collect();
    assert_eq!(figures.len(), CHARTS.len(), "one figure per chart");
    for (figure, id) in figures.iter().zip(CHARTS) {
        assert!(
            figure.contains(&format!("id=\"chart-{id}\"")),
            "figure order"
        );
        assert!(figure.contains("<svg"), "{id}: no <svg> in the DOM");
        let marks = figure.matches("<polyline").count() + figure.matches("<circle").count();
        assert!(marks > 0, "{id}: nothing plotted");
        assert!(figure.contains("<text"), "{id}: no axis text");
    }
    // No broken images: every <img> names a file that exists.
    for img in dom.split("<img").skip(1) {
        let src = img.split("src=\"").nth(1).and_then(|s| s.split('"').next());
        let src = src.expect("img has a src");
        assert!(
            src.contains("://") || page.parent().unwrap().join(src).is_file(),
            "broken image {src}"
        );
    }
    // A screenshot for people (kept as a CI artifact when SCALEBOOK_ARTIFACTS is set).
    let shots = std::env::var_os("SCALEBOOK_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.clone());
    fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("report-mock.png");
    let arg = format!("--screenshot={}", shot.display());
    let out = headless(
        &browser,
        &dir.join("profile"),
        &[&arg, "--window-size=1200,4000", "--hide-scrollbars"],
        &page,
    );
    assert!(
        fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false),
        "screenshot missing: {}",
        stderr(&out)
    );
}

/// A grid too small for five parameters: the chapter opens with the warning (code, numbers,
/// what to do) before any number, and `fits.json` carries it structured, for `checks:`.
#[test]
fn warnings_open_the_chapter() {
    let dir = fresh_dir("report-warnings");
    let study = edited(
        &dir,
        STUDY,
        &[(
            "    - { layers: 3, d_model: 64, heads: 2 }\n    - { layers: 4, d_model: 96, heads: 2 }\n",
            "",
        )],
    );
    let out = run_mock(&study, &dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let index = fs::read_to_string(dir.join("book/src/report-mock/index.md")).unwrap();
    let banner = index.find("> **⚠").expect("warnings banner");
    let first_table = index.find("## Runs").expect("runs table");
    assert!(banner < first_table, "the warnings come first");
    assert!(
        index[banner..first_table]
            .contains("**`too_few_levels`** (chinchilla): 3 sizes × 3 token counts (9 runs)")
    );
    assert!(index[banner..first_table].contains("*What to do:* train at least 3 sizes"));
    assert!(index.contains("## Which law the data support"));
    let fits: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(dir.join("store/studies/report-mock/fits.json")).unwrap(),
    )
    .unwrap();
    let w = fits["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "too_few_levels")
        .expect("structured warning");
    assert_eq!(w["values"]["runs"], 9.0);
    assert!(
        fits["warning_codes"]
            .as_array()
            .unwrap()
            .contains(&"too_few_levels".into())
    );
    // The full grid does not raise it.
    let dir = fresh_dir("report-warnings-full");
    let out = run_mock(Path::new(STUDY), &dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let index = fs::read_to_string(dir.join("book/src/report-mock/index.md")).unwrap();
    assert!(!index.contains("too_few_levels"));
}

/// A learning-rate list: every point trained at each rate, the fits on the best run per
/// point, η*(N, D) fitted, the chart and table in the chapter, the final run at η*.
#[test]
fn a_learning_rate_sweep_is_tuned_per_point() {
    let dir = fresh_dir("report-lr-sweep");
    let study = edited(&dir, STUDY, &[("lr: 1e-3", "lr: [5e-4, 1e-3, 2e-3]")]);
    let out = run_mock(&study, &dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fits: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(dir.join("store/studies/report-mock/fits.json")).unwrap(),
    )
    .unwrap();
    let hyper = &fits["hyper"];
    assert_eq!(hyper["swept"].as_array().unwrap().len(), 3);
    let points = hyper["points"].as_array().unwrap();
    assert_eq!(points.len(), 15, "5 sizes × 3 token counts");
    assert!(
        points
            .iter()
            .all(|p| p["tried"].as_array().unwrap().len() == 3)
    );
    assert!(hyper["eta"]["c"].as_f64().unwrap() > 0.0);
    // The Chinchilla fit sees one run per point.
    assert_eq!(fits["points"], 15);
    let index = fs::read_to_string(dir.join("book/src/report-mock/index.md")).unwrap();
    assert!(index.contains("## Tuned learning rates"));
    assert!(index.contains("id=\"chart-loss_vs_lr\""));
    assert!(index.contains("`l1-d16-t2e4-lr5e-4`"));
    assert_eq!(index.matches(", best lr").count(), 15);
    assert_eq!(index.matches(", not fitted").count(), 30);
    assert!(index.contains("Both train at the learning rate the fitted η*(N, D) gives"));
}

/// Cells of one Markdown table row (`\|` is a pipe inside a cell).
fn cells(line: &str) -> usize {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut count = 1;
    let mut escaped = false;
    for ch in inner.chars() {
        match ch {
            '\\' => escaped = !escaped,
            '|' if !escaped => count += 1,
            _ => escaped = false,
        }
    }
    count
}

/// Every table of the chapter — every table id, every law form (offset, pure, log), a
/// learning-rate sweep — has as many cells in each row as its header has columns.
#[test]
fn every_table_row_has_as_many_cells_as_its_header() {
    let dir = fresh_dir("report-cells");
    let study = edited(
        &dir,
        STUDY,
        &[
            ("lr: 1e-3", "lr: [1e-3, 2e-3]"),
            (
                "  - { law: power, x: params, form: all }",
                "  - { law: power, x: params, form: all }\n  - { law: power, x: tokens, form: all }",
            ),
        ],
    );
    let out = run_mock(&study, &dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut tables = 0;
    for page in ["index.md", "report.md"] {
        let text = fs::read_to_string(dir.join("book/src/report-mock").join(page)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            if lines[i].starts_with('|')
                && lines
                    .get(i + 1)
                    .is_some_and(|l| l.starts_with("| ---") || l.starts_with("|---"))
            {
                let header = cells(lines[i]);
                assert_eq!(cells(lines[i + 1]), header, "{page}: {}", lines[i]);
                let mut j = i + 2;
                while j < lines.len() && lines[j].starts_with('|') {
                    assert_eq!(
                        cells(lines[j]),
                        header,
                        "{page}: under {}\n{}",
                        lines[i],
                        lines[j]
                    );
                    j += 1;
                }
                tables += 1;
                i = j;
            } else {
                i += 1;
            }
        }
    }
    // runs, fits (laws and single-variable laws), laws, allocation, hold-out, final, checks,
    // learning rates, store keys: on both pages.
    assert!(tables >= 16, "{tables} tables");
}

/// Every study shipped in `reports/` renders end to end into a fresh book (mock losses): no
/// template error, no link that only resolves inside this repository's book. Exit 4 (a
/// check the mock's law does not meet) is fine; 1 or 2 is not.
#[test]
fn every_shipped_study_renders_into_a_fresh_book() {
    let mut studies: Vec<PathBuf> = fs::read_dir(crate::support::root().join("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    studies.sort();
    assert!(studies.len() >= 2, "{studies:?}");
    for study in studies {
        let name = study.file_stem().unwrap().to_string_lossy().to_string();
        if let Some(why) = crate::support::corpus_missing(&study) {
            scalebook::testing::skip(
                &format!("every_shipped_study_renders_into_a_fresh_book ({name})"),
                &format!("{why} (.ci/run installs the corpus)"),
            );
            continue;
        }
        let dir = fresh_dir(&format!("shipped-{name}"));
        let out = run_mock(&study, &dir);
        assert!(
            matches!(out.status.code(), Some(0 | 4)),
            "{name}: exit {:?}\n{}",
            out.status.code(),
            stderr(&out)
        );
        assert!(
            dir.join(format!("book/book/{name}/index.html")).is_file(),
            "{name}"
        );
    }
}

/// `fits.json` is reused only while every number the fits read is unchanged: a run's wall
/// time (the cost law), its memory, or one learning-curve point (the frontier) makes
/// `report` fit again; an untouched store reuses it.
#[test]
fn fits_are_refitted_when_any_input_they_read_changes() {
    let dir = fresh_dir("report-refit");
    assert_eq!(run_mock(Path::new(STUDY), &dir).status.code(), Some(0));
    let fitting = |dir: &Path| {
        let out = report(Path::new(STUDY), dir);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stderr(&out).contains("fitting")
    };
    assert!(!fitting(&dir), "an unchanged store reuses fits.json");
    let runs = dir.join("store/runs");
    let mut entries: Vec<PathBuf> = fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            !p.to_string_lossy().contains("final") && !p.to_string_lossy().contains("baseline")
        })
        .collect();
    entries.sort();
    let edit_result = |entry: &Path, field: &str, value: Value| {
        let path = entry.join("result.json");
        let mut v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        v[field] = value;
        fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    };
    edit_result(&entries[0], "wall_seconds", Value::from(123.0));
    assert!(fitting(&dir), "a wall time changed");
    assert!(!fitting(&dir), "and the new fits are reused");
    edit_result(&entries[1], "peak_rss_bytes", Value::from(1u64 << 30));
    assert!(fitting(&dir), "a peak memory changed");
    let curve = entries[2].join("curve.jsonl");
    let text = fs::read_to_string(&curve).unwrap();
    let first = text.lines().next().unwrap();
    let mut point: Value = serde_json::from_str(first).unwrap();
    point["val_loss"] = Value::from(point["val_loss"].as_f64().unwrap() * 1.01);
    fs::write(&curve, text.replacen(first, &point.to_string(), 1)).unwrap();
    assert!(fitting(&dir), "a learning-curve point changed");
    fs::remove_dir_all(dir).unwrap();
}
