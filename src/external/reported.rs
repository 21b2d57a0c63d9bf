//! The trainer contract's other half: what scalebook reads back from an external trainer
//! (`curve.jsonl` and `result.json`), judged strictly — anything missing or malformed fails
//! the run with the reason, never a half-valid record.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::record::CurvePoint;

/// A loss as trainers write it: a number, `null`, or `NaN` / `Infinity` (which Python's
/// `json` writes for non-finite floats).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
enum LossValue {
    Number(f64),
    Word(NonFinite),
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
enum NonFinite {
    NaN,
    Infinity,
    #[serde(rename = "-Infinity")]
    NegInfinity,
}

impl LossValue {
    fn value(self) -> f64 {
        match self {
            LossValue::Number(v) => v,
            LossValue::Word(NonFinite::NaN) => f64::NAN,
            LossValue::Word(NonFinite::Infinity) => f64::INFINITY,
            LossValue::Word(NonFinite::NegInfinity) => f64::NEG_INFINITY,
        }
    }
}

/// One line of the trainer's `curve.jsonl`. A field the contract does not name is an error
/// (a metric goes under `metrics`), never dropped unread.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CurveLine {
    step: u64,
    tokens: u64,
    train_loss: LossValue,
    #[serde(default)]
    val_loss: Option<LossValue>,
    lr: f64,
    wall_seconds: f64,
    /// Metrics by name, on evaluation lines.
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
}

/// The trainer's `result.json` (a field the contract does not name is an error).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultFile {
    val_loss: Option<LossValue>,
    wall_seconds: f64,
    /// Parameters the trainer actually built.
    params: u64,
    /// What it trained on (`cpu`, `cuda:0 (NVIDIA H100)`, …).
    device: String,
    #[serde(default)]
    train_seconds: Option<f64>,
    #[serde(default)]
    peak_memory_bytes: Option<u64>,
    /// Metrics by name at the end of training.
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
}

/// What the trainer reported.
#[derive(Debug)]
pub struct Reported {
    pub val_loss: Option<f64>,
    pub wall_seconds: f64,
    pub train_seconds: Option<f64>,
    pub params: u64,
    pub device: String,
    pub peak_memory_bytes: Option<u64>,
    pub metrics: BTreeMap<String, f64>,
}

/// Python's `json` writes bare `NaN`, `Infinity` and `-Infinity`; quote them (outside
/// strings) so they parse, and the loss they stand for is judged, not the syntax.
fn quote_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else {
            let word = ["-Infinity", "Infinity", "NaN"]
                .into_iter()
                .find(|w| rest.starts_with(w));
            if let Some(w) = word {
                out.push('"');
                out.push_str(w);
                out.push('"');
                rest = &rest[w.len()..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A file the trainer writes, as text: "the trainer wrote no {what} ({file})" when it is
/// missing, the reason when it cannot be read.
fn read_text(path: &Path, file: &str, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("the trainer wrote no {what} ({file})"),
        _ => format!(
            "cannot read the trainer's {file}: {}",
            crate::study::diagnostics::io_reason(&e)
        ),
    })
}

/// Read `curve.jsonl`: every line must parse and end with a newline, steps must rise, and
/// tokens must be `step × tokens_per_step`.
pub fn read_curve(path: &Path, tokens_per_step: u64) -> Result<Vec<CurvePoint>, String> {
    let text = read_text(path, "curve.jsonl", "learning curve")?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(format!(
            "curve.jsonl is truncated: its last line ends without a newline ({} lines)",
            text.lines().count()
        ));
    }
    let mut curve: Vec<CurvePoint> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let p: CurveLine = serde_json::from_str(&quote_non_finite(line))
            .map_err(|e| format!("curve.jsonl line {}: {e}", i + 1))?;
        if let Some(prev) = curve.last()
            && p.step <= prev.step
        {
            return Err(format!(
                "curve.jsonl line {}: step {} after step {}: steps must rise",
                i + 1,
                p.step,
                prev.step
            ));
        }
        let Some(expected) = p.step.checked_mul(tokens_per_step) else {
            return Err(format!(
                "curve.jsonl line {}: step {} is beyond any run (× {tokens_per_step} tokens per \
                 step overflows)",
                i + 1,
                p.step
            ));
        };
        if p.tokens != expected {
            return Err(format!(
                "curve.jsonl line {}: {} tokens at step {}, the contract's {} per step make {}",
                i + 1,
                p.tokens,
                p.step,
                tokens_per_step,
                expected
            ));
        }
        if !p.lr.is_finite() || !p.wall_seconds.is_finite() {
            return Err(format!(
                "curve.jsonl line {}: lr and wall_seconds must be finite numbers",
                i + 1
            ));
        }
        curve.push(CurvePoint {
            step: p.step,
            tokens: p.tokens,
            train_loss: p.train_loss.value(),
            val_loss: p.val_loss.map(LossValue::value),
            lr: p.lr,
            wall_seconds: p.wall_seconds,
            metrics: p.metrics,
        });
    }
    Ok(curve)
}

/// Read `result.json`.
pub fn read_result(path: &Path) -> Result<Reported, String> {
    let text = read_text(path, "result.json", "result")?;
    let r: ResultFile =
        serde_json::from_str(&quote_non_finite(&text)).map_err(|e| format!("result.json: {e}"))?;
    if !(r.wall_seconds.is_finite() && r.wall_seconds >= 0.0) {
        return Err(format!(
            "result.json: wall_seconds must be a time in seconds, found {}",
            r.wall_seconds
        ));
    }
    Ok(Reported {
        val_loss: r.val_loss.map(LossValue::value),
        wall_seconds: r.wall_seconds,
        train_seconds: r.train_seconds.filter(|t| t.is_finite() && *t >= 0.0),
        params: r.params,
        device: r.device,
        peak_memory_bytes: r.peak_memory_bytes,
        metrics: r.metrics,
    })
}

/// Why a trainer's report lacks what the study asked for: a metric in `wanted` missing from
/// the result or from an evaluation line of the curve, or a metric that is not finite.
pub fn missing_metrics(
    wanted: &[String],
    curve: &[CurvePoint],
    reported: &Reported,
) -> Option<String> {
    let bad = |m: &BTreeMap<String, f64>| {
        m.iter()
            .find(|(_, v)| !v.is_finite())
            .map(|(k, v)| (k.clone(), *v))
    };
    if let Some((name, v)) =
        bad(&reported.metrics).or_else(|| curve.iter().find_map(|p| bad(&p.metrics)))
    {
        return Some(format!(
            "the trainer reported metric `{name}` = {v}: not a finite number"
        ));
    }
    for name in wanted {
        if !reported.metrics.contains_key(name) {
            return Some(format!(
                "the study asks for metric `{name}` (`metrics:`), which the trainer did not \
                 report in result.json (`metrics`)"
            ));
        }
        if let Some(p) = curve
            .iter()
            .find(|p| p.val_loss.is_some() && !p.metrics.contains_key(name))
        {
            return Some(format!(
                "the study asks for metric `{name}` (`metrics:`), which the trainer did not \
                 report at its evaluation of step {} in curve.jsonl (`metrics`)",
                p.step
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = crate::testing::fresh_dir("contract");
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn python_non_finite_floats_parse_outside_strings_only() {
        assert_eq!(
            quote_non_finite(r#"{"a": NaN, "b": -Infinity, "c": "NaN x", "d": [Infinity]}"#),
            r#"{"a": "NaN", "b": "-Infinity", "c": "NaN x", "d": ["Infinity"]}"#
        );
        let path = write(
            "curve.jsonl",
            "{\"step\":1,\"tokens\":8,\"train_loss\":NaN,\"lr\":0.1,\"wall_seconds\":0}\n",
        );
        let curve = read_curve(&path, 8).unwrap();
        assert!(curve[0].train_loss.is_nan());
        assert_eq!(curve[0].val_loss, None);
    }

    #[test]
    fn bad_curves_fail_with_the_line() {
        let line = |step: u64, tokens: u64| {
            format!(
                "{{\"step\":{step},\"tokens\":{tokens},\"train_loss\":2.0,\"val_loss\":null,\"lr\":0.1,\"wall_seconds\":0.5}}"
            )
        };
        let ok = format!("{}\n{}\n", line(1, 8), line(2, 16));
        assert_eq!(read_curve(&write("c", &ok), 8).unwrap().len(), 2);
        let truncated = format!("{}\n{}", line(1, 8), &line(2, 16)[..20]);
        let err = read_curve(&write("c", &truncated), 8).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        let falling = format!("{}\n{}\n", line(2, 16), line(1, 8));
        let err = read_curve(&write("c", &falling), 8).unwrap_err();
        assert!(err.contains("line 2: step 1 after step 2"), "{err}");
        let err = read_curve(&write("c", &format!("{}\n", line(1, 9))), 8).unwrap_err();
        assert!(err.contains("line 1: 9 tokens at step 1"), "{err}");
        let err = read_curve(&write("c", "{\"step\":1}\n"), 8).unwrap_err();
        assert!(err.contains("line 1: missing field"), "{err}");
        let missing = crate::testing::fresh_dir("contract").join("curve.jsonl");
        assert!(
            read_curve(&missing, 8)
                .unwrap_err()
                .contains("no learning curve")
        );
    }

    #[test]
    fn results_need_their_fields() {
        let good = r#"{"val_loss": 2.5, "wall_seconds": 1.5, "params": 100, "device": "cpu"}"#;
        let r = read_result(&write("r", good)).unwrap();
        assert_eq!((r.val_loss, r.params), (Some(2.5), 100));
        let nan = r#"{"val_loss": NaN, "wall_seconds": 1.5, "params": 100, "device": "cpu"}"#;
        assert!(
            read_result(&write("r", nan))
                .unwrap()
                .val_loss
                .unwrap()
                .is_nan()
        );
        let err = read_result(&write("r", r#"{"val_loss": 2.5}"#)).unwrap_err();
        assert!(err.contains("missing field `wall_seconds`"), "{err}");
        let err = read_result(&write("r", "{\"val_loss\": 2.5, \"wall")).unwrap_err();
        assert!(err.starts_with("result.json: "), "{err}");
    }
}
