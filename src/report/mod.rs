//! The study's book chapter: charts ([`charts`] drawn by [`plot`]), tables ([`tables`]),
//! minijinja narrative and checks ([`template`]), the reproducibility appendix
//! ([`manifest`]), and the mdBook chapter writer and in-process build ([`book`]).
//!
//! Rendering reads only the collected runs, the fits and the final run: no clock, no host
//! lookups, stable ordering and fixed number formatting, so the same store gives the same
//! bytes.

pub mod accuracy;
pub mod banner;
pub mod batch;
pub mod book;
pub mod charts;
pub mod comparison;
pub mod context;
pub mod curves;
pub mod decisions;
pub mod facts;
pub mod final_table;
pub mod forecast;
pub mod format;
pub mod laws;
pub mod laws_pinned;
pub mod manifest;
pub mod metric;
pub mod pareto;
pub mod plot;
pub mod repeated;
pub mod sweep;
pub mod tables;
pub mod template;

use std::path::{Path, PathBuf};

use minijinja::value::{Serde, Value};

use crate::fit::suite::FitReport;
use crate::study::validate::{CHART_IDS, TABLE_IDS};
use crate::study::{Section, Study};
pub use book::BookError;
use context::{Context, Curve, DataCtx, FinalCtx, RunRow, StudyCtx};
use manifest::Manifest;
use template::CheckResult;

/// Everything a report is made of.
#[derive(Debug, Clone)]
pub struct Input {
    pub study: Study,
    pub data: DataCtx,
    pub runs: Vec<RunRow>,
    pub curves: Vec<Curve>,
    pub fits: FitReport,
    pub final_run: Option<FinalCtx>,
    pub manifest: Manifest,
    /// Branched runs against independent ones (`train.compare`).
    pub comparison: Option<comparison::Comparison>,
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{file}: report.sections[{index}]: template error: {message}")]
    Template {
        file: PathBuf,
        index: usize,
        message: String,
    },
    #[error(
        "{file}: {section}: the link `{target}` names no file of the chapter or the book \
         (links are relative to BOOK/src/<study>/)"
    )]
    BrokenLink {
        file: PathBuf,
        section: String,
        target: String,
    },
    #[error(transparent)]
    Chart(#[from] plot::PlotError),
    #[error(transparent)]
    Book(#[from] BookError),
}

/// What a render produced.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// `BOOK/src/<study>/`.
    pub chapter: PathBuf,
    /// `BOOK/book/` (the HTML).
    pub html: PathBuf,
    pub checks: Vec<CheckResult>,
    /// Chart ids drawn.
    pub charts: Vec<String>,
}

impl Rendered {
    pub fn failed_checks(&self) -> Vec<&CheckResult> {
        self.checks.iter().filter(|c| !c.passed).collect()
    }
}

/// The sections shown when a study lists none: every chart and table that applies.
pub fn default_sections(input: &Input) -> Vec<Section> {
    let mut out = vec![Section::Text(DEFAULT_OVERVIEW.to_string())];
    let chart = |id: &str| Section::Chart(id.to_string());
    let table = |id: &str| Section::Table(id.to_string());
    out.push(table("runs"));
    out.extend(["loss_vs_params", "loss_vs_tokens", "loss_vs_compute"].map(chart));
    if let Some(h) = &input.fits.hyper {
        out.push(chart("loss_vs_lr"));
        out.push(table("learning_rate"));
        if h.transfer.is_some() {
            out.push(table("lr_transfer"));
        }
        if h.batch.is_some() {
            out.push(chart("batch_size"));
            out.push(table("batch_size"));
        }
    }
    if !input.curves.is_empty() {
        out.push(chart("learning_curves"));
        out.push(chart("frontier"));
    }
    out.push(chart("isoflop"));
    out.push(table("fits"));
    out.push(table("laws"));
    out.push(chart("residuals"));
    out.push(chart("extrapolation"));
    out.push(table("holdout"));
    out.push(chart("allocation"));
    out.push(table("allocation"));
    if input.final_run.is_some() {
        out.push(table("final"));
    }
    if input.runs.iter().any(|r| r.wall_seconds > 0.0) {
        out.push(chart("cost"));
    }
    if input.comparison.is_some() {
        out.push(table("branches"));
    }
    if input.fits.curve.is_some() {
        out.push(table("curve"));
        out.push(chart("curve"));
    }
    if input.fits.metric.is_some() {
        out.push(chart("metric"));
    }
    if !accuracy::laws(input).is_empty() {
        out.push(chart("accuracy"));
    }
    if input.fits.decisions.is_some() {
        out.push(table("decisions"));
    }
    if input
        .runs
        .iter()
        .any(|r| r.metrics.contains_key("facts_recall_d1"))
    {
        out.push(chart("facts_recall"));
    }
    out.push(table("warnings"));
    out
}

/// The overview of the default sections (a template like any other).
pub const DEFAULT_OVERVIEW: &str = "\
{% if study.description %}{{ study.description }}

{% endif %}This chapter reports {{ runs | length }} runs on {{ data.description }}\
{% if data.entropy %} (true entropy rate {{ data.entropy | sig(5) }} nats/token){% endif %}.\
{% if fits.chinchilla %} The fitted law is L(N, D) = {{ fits.chinchilla.E | sig(4) }} + \
{{ fits.chinchilla.A | sig(4) }}/N^{{ fits.chinchilla.alpha | sig(3) }} + \
{{ fits.chinchilla.B | sig(4) }}/D^{{ fits.chinchilla.beta | sig(3) }}.{% endif %}\
{% if holdout %} Fitted without the largest runs, it predicts them within \
{{ holdout.rel_error_max | pct }}.{% endif %}\
{% if final and final.run.measured %} The final compute-optimal run `{{ final.run.name }}` \
measured {{ final.run.measured | sig(5) }} against a prediction of \
{{ final.run.predicted | sig(5) }}.{% endif %}
";

fn heading(section: &Section) -> Option<String> {
    let title = match section {
        Section::Text(_) => return None,
        Section::Chart(id) => match id.as_str() {
            "loss_vs_params" => "Loss vs parameters",
            "loss_vs_tokens" => "Loss vs tokens",
            "loss_vs_compute" => "Loss vs compute",
            "isoflop" => "IsoFLOP profiles",
            "learning_curves" => "Learning curves",
            "extrapolation" => "Extrapolation",
            "residuals" => "Residuals",
            "allocation" => "Compute-optimal allocation",
            "cost" => "Cost",
            "frontier" => "Compute frontier",
            "loss_vs_lr" => "Learning rate per point",
            "batch_size" => "Batch size per point",
            "metric" => "Downstream error",
            "accuracy" => "Task accuracy",
            "facts_recall" => "Facts recalled by frequency",
            _ => return None,
        },
        Section::Table(id) => match id.as_str() {
            "runs" => "Runs",
            "fits" => "Fitted laws",
            "laws" => "Which law the data support",
            "learning_rate" => "Tuned learning rates",
            "lr_transfer" => "Learning rate transferred",
            "batch_size" => "Tuned batch sizes",
            "decisions" => "Which recipe wins",
            "allocation" => "Allocation",
            "holdout" => "Hold-out check",
            "warnings" => "Warnings",
            "checks" => "Checks",
            "final" => "Final compute-optimal run",
            "branches" => "Branched and independent runs",
            _ => return None,
        },
    };
    Some(format!("## {title}\n\n"))
}

/// An SVG inlined into the page (so the DOM holds the chart), with a link to its file.
fn inline_figure(id: &str, svg: &str, mock: bool) -> String {
    // A blank line would end the HTML block in CommonMark; plotters writes none, but be sure.
    let body: String = svg
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    // Scale wide (two-panel) charts down to the page instead of overflowing it.
    let body = body.replacen("<svg ", "<svg style=\"max-width:100%;height:auto\" ", 1);
    format!(
        "<figure class=\"scalebook-chart\" id=\"chart-{id}\">\n{body}\n<figcaption>{}{} \
         <a href=\"figures/{id}.svg\">SVG</a></figcaption>\n</figure>\n",
        if mock { "Mock data — " } else { "" },
        template::escape_html(charts::caption(id))
    )
}

fn appendix(m: &Manifest, checks: &[CheckResult]) -> String {
    let mut out = String::from("## Reproducibility\n\n");
    let line = |k: &str, v: &str| format!("- **{k}**: {v}\n");
    out.push_str(&line(
        "Study file",
        &format!(
            "`{}` (sha256 `{}`)",
            template::escape_markdown(&m.study_file),
            m.study_sha256
        ),
    ));
    if !m.producers.is_empty() {
        let list: Vec<String> = m.producers.iter().map(|p| format!("`{p}`")).collect();
        out.push_str(&line("Produced by", &list.join(", ")));
    }
    if m.fit_version > 0 {
        out.push_str(&line("Fitted by", &format!("`fit/{}`", m.fit_version)));
    }
    out.push_str(&line(
        "Trained on",
        &if m.machines.is_empty() {
            "— (imported results)".to_string()
        } else {
            template::escape_markdown(&m.machines.join("; "))
        },
    ));
    if !m.isa_paths.is_empty() {
        out.push_str(&line(
            "Instruction sets",
            &format!("`{}`", m.isa_paths.join("`, `")),
        ));
    }
    out.push_str(&line("Seed", &m.seed.to_string()));
    if let Some(d) = &m.data_identity {
        out.push_str(&line(
            "Data identity",
            &format!("`{}`", d.replace('`', "'")),
        ));
    }
    if !checks.is_empty() {
        let passed = checks.iter().filter(|c| c.passed).count();
        out.push_str(&line(
            "Checks",
            &format!("{passed} of {} passed", checks.len()),
        ));
    }
    out.push_str("\nRe-run the study and rebuild this chapter (finished runs are reused from the store), then check it:\n\n```sh\n");
    for c in &m.commands {
        out.push_str(c);
        out.push('\n');
    }
    out.push_str("```\n");
    if !m.store_keys.is_empty() {
        out.push_str("\n<details><summary>Store keys</summary>\n\n| run | key |\n| --- | --- |\n");
        for k in &m.store_keys {
            out.push_str(&format!(
                "| `{}` | `{}` |\n",
                template::escape_markdown(&k.name),
                k.key
            ));
        }
        out.push_str("\n</details>\n");
    }
    out
}

/// The template context of a chapter (what `report.sections` text and `checks:` see).
fn context(input: &Input) -> Value {
    Value::from(Serde(&Context {
        study: StudyCtx::of(&input.study),
        data: input.data.clone(),
        runs: input.runs.clone(),
        fits: input.fits.clone(),
        holdout: input.fits.holdout.clone(),
        final_run: input.final_run.clone(),
        manifest: input.manifest.clone(),
    }))
}

/// The study's `checks:` evaluated on `input`, without rendering anything.
pub fn checks(input: &Input) -> Vec<CheckResult> {
    template::run_checks(
        &template::environment(),
        &input.study.checks,
        &context(input),
    )
}

/// Render the chapter into `BOOK/src/<study>/`, update `SUMMARY.md` and build the HTML.
pub fn render(input: &Input, book: &Path) -> Result<Rendered, ReportError> {
    let study = &input.study;
    let ctx = context(input);
    let env = template::environment();
    let checks = template::run_checks(&env, &study.checks, &ctx);
    let sections = if study.sections.is_empty() {
        default_sections(input)
    } else {
        study.sections.clone()
    };
    let mock = study.is_mock();
    let mut index = format!(
        "# {}{}\n\n",
        template::escape_markdown(&study.title),
        if mock { " (mock data)" } else { "" }
    );
    index.push_str(&banner::mock_banner(input));
    index.push_str(&banner::warnings_banner(input));
    let mut report = index.clone();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut drawn: Vec<String> = Vec::new();
    for (i, section) in sections.iter().enumerate() {
        let mut both = heading(section).unwrap_or_default();
        let (page, md) = match section {
            Section::Text(source) => {
                let text = template::render_text(&env, source, &ctx).map_err(|message| {
                    ReportError::Template {
                        file: study.path.clone(),
                        index: i,
                        message,
                    }
                })?;
                let text = format!("{}\n", text.trim_end());
                (text.clone(), text)
            }
            Section::Chart(id) if CHART_IDS.contains(&id.as_str()) => {
                match charts::panels(id, input) {
                    Ok(panels) => {
                        let svg = plot::render(id, &panels)?;
                        if !drawn.contains(id) {
                            files.push((format!("figures/{id}.svg"), svg.clone().into_bytes()));
                            drawn.push(id.clone());
                        }
                        (
                            inline_figure(id, &svg, mock),
                            format!(
                                "![{}](figures/{id}.svg)\n\n*{}{}*\n",
                                template::escape_markdown(charts::caption(id)),
                                if mock { "Mock data — " } else { "" },
                                template::escape_markdown(charts::caption(id))
                            ),
                        )
                    }
                    Err(why) => {
                        let note = format!(
                            "*Chart `{id}` not drawn: {}.*\n",
                            template::escape_markdown(&why)
                        );
                        (note.clone(), note)
                    }
                }
            }
            Section::Table(id) if TABLE_IDS.contains(&id.as_str()) => {
                let mut t = tables::render(id, input, &checks);
                if mock && id != "checks" {
                    t.push_str(banner::MOCK_TABLE_NOTE);
                }
                (t.clone(), t)
            }
            // Validation rejects unknown ids; a hand-built study still renders.
            Section::Chart(id) | Section::Table(id) => {
                let note = format!("*Unknown section `{}`.*\n", template::escape_markdown(id));
                (note.clone(), note)
            }
        };
        both.push_str(&page);
        index.push_str(&both);
        index.push('\n');
        report.push_str(&heading(section).unwrap_or_default());
        report.push_str(&md);
        report.push('\n');
    }
    let listed_checks = sections
        .iter()
        .any(|s| matches!(s, Section::Table(id) if id == "checks"));
    if !study.checks.is_empty() && !listed_checks {
        let t = format!("## Checks\n\n{}\n", tables::checks(&checks));
        index.push_str(&t);
        report.push_str(&t);
    }
    let appendix = appendix(&input.manifest, &checks);
    index.push_str(&appendix);
    report.push_str(&appendix);
    files.push(("index.md".into(), index.clone().into_bytes()));
    files.push(("report.md".into(), report.clone().into_bytes()));

    let _held = book::lock(book)?;
    let chapter = book.join("src").join(&study.name);
    // A link that names nothing is bad input: refused before anything is written.
    let will_write = |path: &str| files.iter().any(|(f, _)| f == path);
    for text in [&index, &report] {
        if let Some(target) = book::first_broken_link(&chapter, text, &will_write) {
            let section = study
                .sections
                .iter()
                .position(|s| matches!(s, Section::Text(t) if t.contains(target.as_str())))
                .map_or("the chapter".to_string(), |i| {
                    format!("report.sections[{i}]")
                });
            return Err(ReportError::BrokenLink {
                file: study.path.clone(),
                section,
                target,
            });
        }
    }
    book::ensure_book(book)?;
    book::write_chapter(&chapter, &files)?;
    book::write_summary(book, &study.name, &study.title)?;
    let html = book::build(book)?;
    Ok(Rendered {
        chapter,
        html,
        checks,
        charts: drawn,
    })
}
