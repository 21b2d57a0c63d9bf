//! Checking a study against its published results, without trusting either: every record's
//! integrity, a refit compared number by number with `fits.json`, a fresh render compared
//! byte by byte with the published chapter, and a seeded sample of runs trained again and
//! compared with their records. What verification cannot prove — the runs it did not
//! re-train — is said in the report, never passed over.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::Error;
use super::diff::identity_fields;
use super::fitting::{Constraints, FIT_VERSION, compute, recorded, study_rows};
use crate::exec::Executor;
use crate::record::read::{Entry, read_entry};
use crate::record::{RunStatus, numerics_digest};
use crate::rng::SplitMix64;
use crate::store::{EntryState, Store};
use crate::study::plan::{TRAINER_VERSION, plan};
use crate::study::{RunSpec, Study};

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Verified.
    Ok,
    /// Re-trained to the same bits.
    Identical,
    /// Re-trained on another CPU or instruction-set path: within the stated tolerance.
    WithinTolerance,
    /// Made by an older trainer or fitting code: the differences are shown, not judged.
    Stale,
    /// Nothing to check against (no published chapter): said, not passed.
    NotChecked,
    /// Differs at the same versions, is missing, or does not read back.
    Mismatch,
}

impl Verdict {
    pub fn failed(self) -> bool {
        self == Verdict::Mismatch
    }
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `integrity`, `retrain`, `refit` or `chapter`.
    pub kind: &'static str,
    /// What was checked: a run, a fitted number, a chapter file.
    pub subject: String,
    pub verdict: Verdict,
    pub detail: String,
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub study: String,
    pub store: String,
    /// The seed the sample was drawn with (to draw it again).
    pub seed: u64,
    /// The runs re-trained.
    pub sample: Vec<String>,
    /// Runs with records that were not re-trained.
    pub not_retrained: usize,
    pub checks: Vec<Check>,
    pub verdict: Verdict,
}

/// Which runs to re-train.
#[derive(Debug, Clone)]
pub enum Pick {
    /// K runs at random, weighted by their compute.
    Sample(usize),
    /// These runs by name.
    Runs(Vec<String>),
}

/// How to verify.
pub struct Options<'a> {
    pub pick: Pick,
    pub seed: u64,
    /// The book whose chapter is compared.
    pub book: PathBuf,
    /// Trains the sampled runs (the engine, or the mock for mock records).
    pub executor: &'a dyn Executor,
    /// Where re-trained runs and the fresh render go.
    pub scratch: PathBuf,
}

/// A re-trained run's final loss may differ from its record by this much (relative) when it
/// trained on another CPU model or instruction-set path: floating-point sums in another
/// order, compounded over the run.
pub const RETRAIN_TOLERANCE: f64 = 1e-2;

/// Verify `study` against `store` (see the module docs).
pub fn verify(study: &Study, store: &Store, options: &Options) -> Result<Report, Error> {
    let specs = super::transfer::all_specs(study, store)?;
    let mut checks = Vec::new();
    let mut records: Vec<(RunSpec, Entry)> = Vec::new();
    integrity(store, &specs, &mut checks, &mut records);
    if records.is_empty() {
        // Records of another study (or none at all) are bad input, not a failed verification.
        return Err(Error::Input(format!(
            "{}: holds no record of the {} runs {} plans ({} record(s) of other runs)",
            store.root().display(),
            specs.len(),
            study.path.display(),
            store.entries().len()
        )));
    }
    // The independent runs the chapter compares with (`train.compare`) are evidence too.
    if let Some(other) = crate::study::branches::comparison(study) {
        let compared = plan(&other).map_err(|e| Error::Input(e.to_string()))?;
        integrity(store, &compared, &mut checks, &mut records);
    }
    let fits = refit(study, store, &mut checks)?;
    // The final run, its baseline and batch neighbour, as the recorded fits plan them.
    if let Some(fits) = &fits
        && let Some(fp) = super::chapter::plan_final(study, fits)?
    {
        integrity(store, &fp.specs(), &mut checks, &mut records);
    }
    if let Some(fits) = &fits {
        chapter(study, store, fits, options, &mut checks)?;
    }
    let chosen = choose(&records, &options.pick, options.seed)?;
    for &i in &chosen {
        let (spec, entry) = &records[i];
        checks.push(retrain(spec, entry, options));
    }
    let verdict = if checks.iter().any(|c| c.verdict.failed()) {
        Verdict::Mismatch
    } else if checks.iter().any(|c| c.verdict == Verdict::Stale) {
        Verdict::Stale
    } else {
        Verdict::Ok
    };
    Ok(Report {
        study: study.name.clone(),
        store: store.root().display().to_string(),
        seed: options.seed,
        sample: chosen.iter().map(|&i| records[i].0.name.clone()).collect(),
        not_retrained: records.len() - chosen.len(),
        checks,
        verdict,
    })
}

/// Each planned run's record must be there and read back whole; a record filed under the
/// same name with another key is stale (an older trainer) or a mismatch (anything else
/// changed: the data, the study's settings).
fn integrity(
    store: &Store,
    specs: &[RunSpec],
    checks: &mut Vec<Check>,
    records: &mut Vec<(RunSpec, Entry)>,
) {
    // Every entry of the store, read only if a planned record is missing.
    let mut others: Option<Vec<(String, Result<Entry, String>)>> = None;
    for spec in specs {
        let check = |verdict, detail: String| Check {
            kind: "integrity",
            subject: spec.name.clone(),
            verdict,
            detail,
        };
        match store.inspect(spec) {
            EntryState::Done(e) | EntryState::Failed(e) => {
                let status = format!("{:?}", e.result.status).to_lowercase();
                checks.push(check(
                    Verdict::Ok,
                    format!("{status}; spec hashes to its key; data and producer as planned"),
                ));
                records.push((spec.clone(), *e));
            }
            EntryState::Corrupt(why) => checks.push(check(Verdict::Mismatch, why)),
            EntryState::Missing => {
                let namesake = others
                    .get_or_insert_with(|| store.entries())
                    .iter()
                    .find_map(|(dir, e)| {
                        let e = e.as_ref().ok()?;
                        (e.result.name == spec.name && dir != &spec.dir_name()).then_some(e)
                    });
                checks.push(match namesake {
                    Some(e) => {
                        let fields = identity_fields(&e.result.spec.identity, &spec.identity);
                        let stale = fields == ["trainer"];
                        check(
                            if stale {
                                Verdict::Stale
                            } else {
                                Verdict::Mismatch
                            },
                            format!(
                                "the record was made with another {} ({}); the study plans key {}",
                                fields.join(", "),
                                if stale {
                                    format!("trainer `{}`", e.result.spec.identity.trainer)
                                } else {
                                    "not this study's runs".to_string()
                                },
                                &spec.key[..12]
                            ),
                        )
                    }
                    None => check(Verdict::Mismatch, "no record in the store".into()),
                });
            }
        }
    }
}

/// Refit from the records and compare every number with `fits.json`.
fn refit(
    study: &Study,
    store: &Store,
    checks: &mut Vec<Check>,
) -> Result<Option<crate::fit::suite::FitReport>, Error> {
    let Some(published) = recorded(study, store) else {
        checks.push(Check {
            kind: "refit",
            subject: "fits.json".into(),
            verdict: Verdict::Mismatch,
            detail: format!(
                "no readable fits.json in {}",
                store.study_dir(&study.name).display()
            ),
        });
        return Ok(None);
    };
    let input = study_rows(study, store)?;
    let fresh = compute(study, &input, Constraints::default());
    let stale = published.fit_version != FIT_VERSION;
    let a = serde_json::to_value(&published).unwrap_or(Value::Null);
    let b = serde_json::to_value(&fresh).unwrap_or(Value::Null);
    let mut diffs = Vec::new();
    json_diffs("", &a, &b, &mut diffs);
    let inputs_differ = diffs.iter().any(|(path, _, _)| path == "inputs");
    diffs.retain(|(path, _, _)| path != "inputs" && path != "fit_version");
    let verdict = if diffs.is_empty() && !inputs_differ {
        Verdict::Ok
    } else if stale {
        Verdict::Stale
    } else {
        Verdict::Mismatch
    };
    let mut detail = if diffs.is_empty() {
        "every number re-derived exactly".to_string()
    } else {
        let shown: Vec<String> = diffs
            .iter()
            .take(8)
            .map(|(path, old, new)| format!("{path}: recorded {old}, refit {new}"))
            .collect();
        format!(
            "{} number(s) differ: {}{}",
            diffs.len(),
            shown.join("; "),
            if diffs.len() > 8 { "; …" } else { "" }
        )
    };
    if inputs_differ {
        detail.push_str("; the records are not the ones fits.json was computed from");
    }
    if stale {
        detail.push_str(&format!(
            " (fits.json is fit/{}, this scalebook fit/{FIT_VERSION})",
            published.fit_version
        ));
    }
    checks.push(Check {
        kind: "refit",
        subject: "fits.json".into(),
        verdict,
        detail,
    });
    Ok(Some(published))
}

/// Every leaf where two JSON values differ: (path, recorded, refit).
fn json_diffs(path: &str, a: &Value, b: &Value, out: &mut Vec<(String, String, String)>) {
    let at = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                json_diffs(
                    &at(k),
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                json_diffs(&format!("{path}[{i}]"), u, v, out);
            }
        }
        _ if a != b => out.push((path.to_string(), a.to_string(), b.to_string())),
        _ => {}
    }
}

/// Render the chapter afresh from the records and the recorded fits, and compare it byte for
/// byte with the published one.
fn chapter(
    study: &Study,
    store: &Store,
    fits: &crate::fit::suite::FitReport,
    options: &Options,
    checks: &mut Vec<Check>,
) -> Result<(), Error> {
    let published = options.book.join("src").join(&study.name);
    if !published.join("index.md").is_file() {
        checks.push(Check {
            kind: "chapter",
            subject: published.display().to_string(),
            verdict: Verdict::NotChecked,
            detail: "no published chapter to compare (`--book` names the book)".into(),
        });
        return Ok(());
    }
    let scratch = options.scratch.join("book");
    let rendered = super::chapter::render_chapter(study, store, fits, &scratch, &options.book)?;
    let fresh = files_under(&rendered.chapter);
    let old = files_under(&published);
    let mut names: Vec<&PathBuf> = fresh.keys().chain(old.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let (verdict, detail) = match (old.get(name), fresh.get(name)) {
            (Some(a), Some(b)) if a == b => (Verdict::Ok, "identical".to_string()),
            (Some(a), Some(b)) => (Verdict::Mismatch, first_difference(a, b)),
            (None, Some(_)) => (
                Verdict::Mismatch,
                "missing from the published chapter".into(),
            ),
            (Some(_), None) => (
                Verdict::Mismatch,
                "published, but no render makes it".into(),
            ),
            (None, None) => continue,
        };
        checks.push(Check {
            kind: "chapter",
            subject: name.display().to_string(),
            verdict,
            detail,
        });
    }
    Ok(())
}

/// Every file under `dir`, by its path relative to `dir`.
fn files_under(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let (Ok(rel), Ok(bytes)) = (p.strip_prefix(dir), std::fs::read(&p)) {
                out.insert(rel.to_path_buf(), bytes);
            }
        }
    }
    out
}

/// The first line where two files differ.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            let cut = |s: &str| s.chars().take(120).collect::<String>();
            return format!(
                "line {}: published `{}`, rendered `{}`",
                i + 1,
                cut(x),
                cut(y)
            );
        }
    }
    format!(
        "published has {} lines, the render {}",
        a.lines().count(),
        b.lines().count()
    )
}

/// The runs to re-train: by name, or K drawn without replacement with probability growing
/// with compute (Efraimidis–Spirakis keys u^(1/w)), so the largest runs — the ones a fraud
/// or a bug would most likely touch — are the likeliest.
fn choose(records: &[(RunSpec, Entry)], pick: &Pick, seed: u64) -> Result<Vec<usize>, Error> {
    let ok: Vec<usize> = (0..records.len())
        .filter(|&i| records[i].1.result.status == RunStatus::Ok)
        .collect();
    match pick {
        Pick::Runs(names) => names
            .iter()
            .map(|name| {
                records
                    .iter()
                    .position(|(s, _)| &s.name == name)
                    .ok_or_else(|| {
                        Error::Input(format!(
                            "--runs: no run named `{name}` in the study's records"
                        ))
                    })
            })
            .collect(),
        Pick::Sample(k) => {
            let mut rng = SplitMix64::new(seed);
            let max = ok.iter().map(|&i| records[i].0.flops).fold(1.0, f64::max);
            let mut keyed: Vec<(f64, usize)> = ok
                .iter()
                .map(|&i| {
                    let w = (records[i].0.flops / max).max(1e-12);
                    (rng.next_f64().max(1e-300).ln() / w, i)
                })
                .collect();
            keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            Ok(keyed.into_iter().take(*k).map(|(_, i)| i).collect())
        }
    }
}

/// Train one run again and compare it with its record.
fn retrain(spec: &RunSpec, entry: &Entry, options: &Options) -> Check {
    let check = |verdict, detail: String| Check {
        kind: "retrain",
        subject: spec.name.clone(),
        verdict,
        detail,
    };
    let recorded = &entry.result;
    if !spec.is_mock() && !spec.is_external() && spec.identity.trainer != TRAINER_VERSION {
        return check(
            Verdict::Stale,
            format!(
                "trained by `{}`; this scalebook trains `{TRAINER_VERSION}` and cannot re-train it",
                spec.identity.trainer
            ),
        );
    }
    let out = options.scratch.join("runs").join(spec.dir_name());
    let _ = std::fs::remove_dir_all(&out);
    if let Err(e) = std::fs::create_dir_all(&out) {
        return check(Verdict::Mismatch, format!("{}: {e}", out.display()));
    }
    if let Err(e) = options.executor.train(spec, &out, &mut |_, _| {}) {
        return check(Verdict::Mismatch, format!("re-training failed: {e}"));
    }
    let fresh = match read_entry(&out, &spec.key) {
        Ok(Some(e)) => e,
        Ok(None) => return check(Verdict::Mismatch, "re-training wrote no record".into()),
        Err(why) => return check(Verdict::Mismatch, format!("the re-trained record: {why}")),
    };
    if fresh.result.status != RunStatus::Ok && recorded.status == RunStatus::Ok {
        let why = fresh.result.reason.clone().unwrap_or_default();
        return check(
            Verdict::Mismatch,
            format!("recorded ok, but re-training did not finish: {why}"),
        );
    }
    let same_bits =
        numerics_digest(recorded, &entry.curve) == numerics_digest(&fresh.result, &fresh.curve);
    let same_machine = recorded.cpu == fresh.result.cpu && recorded.isa == fresh.result.isa;
    let difference = largest_difference(
        &entry.curve,
        &fresh.curve,
        recorded.val_loss,
        fresh.result.val_loss,
    );
    let threads = format!(
        "recorded with {} thread(s), re-trained with {}",
        recorded.threads, fresh.result.threads
    );
    if let Some(external) = &spec.external {
        // An external trainer promises no bit-identity: judged by its stated tolerance.
        let tolerance = external.tolerance;
        let verdict = if same_bits {
            Verdict::Identical
        } else if difference <= tolerance {
            Verdict::WithinTolerance
        } else {
            Verdict::Mismatch
        };
        return check(
            verdict,
            format!(
                "external trainer `{}` on {}: largest relative difference {difference:.3e}, \
                 tolerance {tolerance:e} (trainer.tolerance; {threads})",
                external.version,
                fresh
                    .result
                    .device
                    .as_deref()
                    .unwrap_or("an unrecorded device"),
            ),
        );
    }
    match (same_machine, same_bits) {
        (true, true) => check(
            Verdict::Identical,
            format!("bit-identical curve and losses ({threads})"),
        ),
        (true, false) => check(
            Verdict::Mismatch,
            format!(
                "same CPU and instruction-set path but other numbers: largest relative difference {difference:.3e} ({threads})"
            ),
        ),
        (false, _) => {
            let within = difference <= RETRAIN_TOLERANCE;
            check(
                if within {
                    Verdict::WithinTolerance
                } else {
                    Verdict::Mismatch
                },
                format!(
                    "recorded on `{}` ({}), re-trained on `{}` ({}): largest relative difference {difference:.3e}, tolerance {RETRAIN_TOLERANCE:e}",
                    recorded.cpu,
                    recorded.isa.as_deref().unwrap_or("path unrecorded"),
                    fresh.result.cpu,
                    fresh.result.isa.as_deref().unwrap_or("path unrecorded"),
                ),
            )
        }
    }
}

/// The largest relative difference between two runs' validation losses (curve and final).
fn largest_difference(
    a: &[crate::record::CurvePoint],
    b: &[crate::record::CurvePoint],
    final_a: Option<f64>,
    final_b: Option<f64>,
) -> f64 {
    let rel = |x: f64, y: f64| ((x - y) / x.abs().max(1e-12)).abs();
    let mut worst: f64 = match (final_a, final_b) {
        (Some(x), Some(y)) => rel(x, y),
        (None, None) => 0.0,
        _ => f64::INFINITY,
    };
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    for (p, q) in a.iter().zip(b) {
        if let (Some(x), Some(y)) = (p.val_loss, q.val_loss) {
            worst = worst.max(rel(x, y));
        }
        worst = worst.max(rel(p.train_loss, q.train_loss));
    }
    if worst.is_nan() { f64::INFINITY } else { worst }
}
