//! An external trainer: the user's own command, run once per run through the trainer
//! contract (book page "Bring your own trainer"). This is the plan's view of it — the
//! command template with its placeholders, the declared version, the environment — and the
//! producer value it gives every run's identity. Running it is [`crate::external`]'s job.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Placeholders a command template may use, each replaced by one argument's worth of text.
pub const PLACEHOLDERS: [(&str, &str); 8] = [
    ("spec", "the run's contract JSON file"),
    (
        "out",
        "the folder the trainer writes `curve.jsonl` and `result.json` into",
    ),
    ("train_tokens", "the training token file"),
    ("val_tokens", "the validation token file"),
    ("threads", "CPU threads for the run"),
    (
        "device",
        "the accelerator the run may use (`--devices`), else `cpu`",
    ),
    ("name", "the run's name"),
    ("key", "the run's content key"),
];

/// Producers whose identity starts with this run an external command.
pub const EXTERNAL_PRODUCER_PREFIX: &str = "external/";

/// Default relative tolerance `verify` grants a re-trained external run: its final and
/// curve losses may differ from the record by this much (bit-identity is not promised).
pub const DEFAULT_TOLERANCE: f64 = 1e-2;

/// The user's trainer, as the study file declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalTrainer {
    /// The command template, as written (`python3 train.py --spec {spec}`).
    pub command: String,
    /// The declared version, or `FILE@sha256:…` of the file standing for it.
    pub version: String,
    /// Extra environment for the command (part of the identity: it can change results).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Where the command runs (absolute); never part of the identity, and not kept in
    /// published records (the folder is the machine's, not the run's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<PathBuf>,
    /// Seconds a run may take before it is killed and recorded as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// Relative difference `verify` accepts between a re-trained run and its record.
    pub tolerance: f64,
    /// The training tokens come through a named pipe (`trainer.tokens: stream`); not part of
    /// the identity.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream_tokens: bool,
}

impl ExternalTrainer {
    /// The producer value of every run it trains: version, command template and
    /// environment — never where, on which device or how it is scheduled.
    pub fn producer(&self) -> String {
        let mut producer = format!(
            "{EXTERNAL_PRODUCER_PREFIX}{}: {}",
            self.version, self.command
        );
        if !self.env.is_empty() {
            let env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            producer.push_str(&format!(" [env {}]", env.join(" ")));
        }
        producer
    }
}

/// Whether a run's producer is an external command.
pub fn is_external_producer(producer: &str) -> bool {
    producer.starts_with(EXTERNAL_PRODUCER_PREFIX)
}

/// One piece of a command-template word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Placeholder(&'static str),
}

/// A command template split into argument words, each a list of pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub words: Vec<Vec<Piece>>,
}

impl Template {
    /// Split `command` into words (POSIX shell quoting, no shell run) and find its
    /// placeholders; `{{` and `}}` stand for literal braces. `Err` says what is wrong.
    pub fn parse(command: &str) -> Result<Template, String> {
        let words =
            shlex::split(command).ok_or_else(|| "unbalanced quotes in the command".to_string())?;
        if words.is_empty() {
            return Err("the command is empty".into());
        }
        let words = words
            .iter()
            .map(|w| pieces(w))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Template { words })
    }

    /// The argument list with every placeholder replaced by `value(name)`.
    pub fn render(&self, value: &dyn Fn(&str) -> String) -> Vec<String> {
        self.words
            .iter()
            .map(|word| {
                word.iter()
                    .map(|piece| match piece {
                        Piece::Text(t) => t.clone(),
                        Piece::Placeholder(name) => value(name),
                    })
                    .collect()
            })
            .collect()
    }
}

fn pieces(word: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("`{{{name}` is not closed with `}}`")),
                    }
                }
                let Some((known, _)) = PLACEHOLDERS.iter().find(|(p, _)| *p == name) else {
                    let known: Vec<String> = PLACEHOLDERS
                        .iter()
                        .map(|(p, _)| format!("{{{p}}}"))
                        .collect();
                    return Err(format!(
                        "unknown placeholder `{{{name}}}`; known: {} (write `{{{{` for a literal brace)",
                        known.join(", ")
                    ));
                };
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(Piece::Placeholder(known));
            }
            '}' => return Err("a lone `}` (write `}}` for a literal brace)".into()),
            c => text.push(c),
        }
    }
    if !text.is_empty() || out.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_like_a_shell_and_fill_placeholders_per_word() {
        let t = Template::parse("python3 'my dir/train.py' --spec {spec} --tag=run-{name} {{x}}")
            .unwrap();
        let args = t.render(&|name| format!("<{name}>"));
        assert_eq!(
            args,
            vec![
                "python3",
                "my dir/train.py",
                "--spec",
                "<spec>",
                "--tag=run-<name>",
                "{x}"
            ]
        );
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        let err = Template::parse("train --spec {spce}").unwrap_err();
        assert!(err.contains("unknown placeholder `{spce}`"), "{err}");
        assert!(err.contains("{spec}"), "{err}");
        assert!(
            Template::parse("train {spec")
                .unwrap_err()
                .contains("not closed")
        );
        assert!(Template::parse("train }").unwrap_err().contains("lone"));
        assert!(
            Template::parse("train 'oops")
                .unwrap_err()
                .contains("quotes")
        );
        assert!(Template::parse("  ").unwrap_err().contains("empty"));
    }

    #[test]
    fn the_producer_names_version_command_and_environment_only() {
        let mut t = ExternalTrainer {
            command: "python3 train.py {spec}".into(),
            version: "mine/1".into(),
            env: BTreeMap::new(),
            workdir: Some(PathBuf::from("/a")),
            timeout_seconds: Some(10.0),
            tolerance: DEFAULT_TOLERANCE,
            stream_tokens: false,
        };
        let base = t.producer();
        assert_eq!(base, "external/mine/1: python3 train.py {spec}");
        t.workdir = Some(PathBuf::from("/b"));
        t.timeout_seconds = None;
        t.stream_tokens = true;
        assert_eq!(t.producer(), base);
        t.env.insert("DTYPE".into(), "bf16".into());
        assert_eq!(
            t.producer(),
            "external/mine/1: python3 train.py {spec} [env DTYPE=bf16]"
        );
        assert!(is_external_producer(&base));
    }
}
