//! The one reader of a run's record. Every part of an entry must read back whole — the
//! result, the spec it was trained from, every line of its curve — and agree with the key it
//! is filed under; anything else makes the entry corrupt, with one line saying which part and
//! why. Fields that a newer scalebook added and an older record lacks take their defaults:
//! that is age, not damage.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use super::{CurvePoint, RunResult, RunStatus};
use crate::study::RunSpec;

/// A readable record: the result and its learning curve.
#[derive(Debug, Clone)]
pub struct Entry {
    pub result: RunResult,
    pub curve: Vec<CurvePoint>,
}

/// Read the record in `dir`, filed under `key`: `Ok(None)` when there is no folder,
/// `Err(reason)` when any part of it is unreadable or inconsistent.
pub fn read_entry(dir: &Path, key: &str) -> Result<Option<Entry>, String> {
    if !dir.exists() {
        return Ok(None);
    }
    let read = |file: &str| {
        fs::read_to_string(dir.join(file)).map_err(|e| match e.kind() {
            ErrorKind::NotFound => format!("{file} is missing"),
            _ => format!("{file} unreadable: {e}"),
        })
    };
    let result: RunResult = serde_json::from_str(&read("result.json")?)
        .map_err(|e| format!("result.json is not a run record: {e}"))?;
    if result.key != key {
        return Err("result.json belongs to another run (key differs)".into());
    }
    check_spec(&result.spec, key, "result.json")?;
    let spec: RunSpec = serde_json::from_str(&read("spec.json")?)
        .map_err(|e| format!("spec.json is not a run spec: {e}"))?;
    check_spec(&spec, key, "spec.json")?;
    let curve = parse_curve(&read("curve.jsonl")?)?;
    if curve.is_empty() && result.status == RunStatus::Ok {
        return Err("curve.jsonl is empty for a finished run".into());
    }
    Ok(Some(Entry { result, curve }))
}

/// A spec must be filed under its own key, and its identity must hash to that key (a spec
/// edited after training does not).
fn check_spec(spec: &RunSpec, key: &str, file: &str) -> Result<(), String> {
    if spec.key != key {
        return Err(format!("{file}: the spec is another run's (key differs)"));
    }
    if !spec.key_is_consistent() {
        return Err(format!(
            "{file}: the spec's identity does not hash to its key (edited after training?)"
        ));
    }
    Ok(())
}

/// Every line a curve point; the file ends with a newline (a last line without one was cut
/// off while being written or since).
fn parse_curve(text: &str) -> Result<Vec<CurvePoint>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("curve.jsonl ends mid-line (truncated)".into());
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| format!("curve.jsonl line {}: not a curve point: {e}", i + 1))
        })
        .collect()
}
