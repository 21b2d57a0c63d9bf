//! Task files (`tasks:`): ranked-classification items a run is scored on at every evaluation,
//! as ranked-classification harnesses score them — each choice by the log-likelihood the
//! model gives it after the item's context, the item right when the correct choice scores
//! best. One item per line of JSONL:
//!
//! ```json
//! {"context": "The capital of France is", "choices": [" Paris", " Rome"], "answer": 0}
//! {"context": [5, 17, 3], "choices": [[9], [12, 4]], "answer": 1}
//! ```
//!
//! Text items are tokenized with the study's tokenizer (text corpora); token items give ids
//! directly (any data, the synthetic languages included). Each task records
//! `<name>_accuracy` (the share of items whose correct choice scores best) and `<name>_nll`
//! (the task loss: the correct choice's negative log-likelihood, summed over its tokens —
//! per token with `score: mean` — averaged over the items).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How a choice is scored: its summed log-likelihood (`sum`, the default) or per token
/// (`mean`, which does not favour short choices).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Score {
    #[default]
    Sum,
    Mean,
}

/// A task as a run's identity knows it: its name, how it is scored, and the sha256 of its
/// file's bytes (an edited file re-keys the runs it scores).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskIdentity {
    pub name: String,
    pub score: Score,
    pub sha256: String,
}

/// A task of a study: its identity and where its file is (absolute, so a spec scores it
/// from any folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    #[serde(flatten)]
    pub identity: TaskIdentity,
    pub path: std::path::PathBuf,
}

impl TaskSpec {
    /// The names a run's record carries for this task.
    pub fn recorded(&self) -> [String; 2] {
        recorded(&self.identity.name)
    }
}

/// `<name>_accuracy` and `<name>_nll`.
pub fn recorded(name: &str) -> [String; 2] {
    [format!("{name}_accuracy"), format!("{name}_nll")]
}

/// A context or a choice as the file gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Seq {
    Text(String),
    Ids(Vec<u32>),
}

/// One item as the file gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawItem {
    pub line: usize,
    pub context: Seq,
    pub choices: Vec<Seq>,
    pub answer: usize,
}

/// Text to token ids under a study's tokenizer.
pub type Encode<'a> = &'a dyn Fn(&str) -> Vec<u32>;

/// One tokenized item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub context: Vec<u32>,
    pub choices: Vec<Vec<u32>>,
    pub answer: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    context: serde_json::Value,
    choices: Vec<serde_json::Value>,
    answer: serde_json::Value,
}

fn seq(v: &serde_json::Value, what: &str) -> Result<Seq, String> {
    match v {
        serde_json::Value::String(s) => Ok(Seq::Text(s.clone())),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(|| format!("{what} holds `{x}`, not a token id"))
            })
            .collect::<Result<Vec<u32>, String>>()
            .map(Seq::Ids),
        other => Err(format!(
            "{what} is `{other}`: give text (a string) or token ids (a list of integers)"
        )),
    }
}

/// The items of a task file's bytes, or the first problem as `line N: why`.
pub fn parse(bytes: &[u8]) -> Result<Vec<RawItem>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        format!(
            "line {line}: not valid UTF-8 (byte offset {})",
            e.valid_up_to()
        )
    })?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let at = |why: String| format!("line {line}: {why}");
        let l: Line = serde_json::from_str(raw).map_err(|e| at(format!("not a task item: {e}")))?;
        let context = seq(&l.context, "`context`").map_err(at)?;
        if l.choices.is_empty() {
            return Err(at("`choices` is empty: give at least two".into()));
        }
        if l.choices.len() < 2 {
            return Err(at("`choices` holds one choice: give at least two".into()));
        }
        let choices = l
            .choices
            .iter()
            .enumerate()
            .map(|(k, c)| seq(c, &format!("`choices[{k}]`")))
            .collect::<Result<Vec<Seq>, String>>()
            .map_err(at)?;
        let kinds = std::iter::once(&context)
            .chain(&choices)
            .map(|s| matches!(s, Seq::Text(_)))
            .collect::<Vec<bool>>();
        if kinds.iter().any(|&k| k != kinds[0]) {
            return Err(at(
                "mixes text and token ids: give the context and every choice the same way".into(),
            ));
        }
        let answer = l
            .answer
            .as_u64()
            .ok_or_else(|| at(format!("`answer` is `{}`, not a choice's index", l.answer)))?
            as usize;
        if answer >= choices.len() {
            return Err(at(format!(
                "`answer` {answer} is out of range: the item has {} choices (0 to {})",
                choices.len(),
                choices.len() - 1
            )));
        }
        out.push(RawItem {
            line,
            context,
            choices,
            answer,
        });
    }
    if out.is_empty() {
        return Err("holds no item".into());
    }
    Ok(out)
}

/// The items tokenized (`encode` turns text into ids; `None` where the data has no
/// tokenizer) and checked against the model: non-empty context and choices, ids below
/// `vocab`, and the context with its longest choice inside the model's `context` + 1 tokens
/// (the last token is only predicted). The first problem is `line N: why`.
pub fn tokenize(
    raw: &[RawItem],
    encode: Option<Encode>,
    vocab: u32,
    context: usize,
) -> Result<Vec<Item>, String> {
    let ids = |s: &Seq| -> Result<Vec<u32>, String> {
        match (s, encode) {
            (Seq::Ids(v), _) => Ok(v.clone()),
            (Seq::Text(t), Some(encode)) => Ok(encode(t)),
            (Seq::Text(_), None) => Err(
                "gives text, and this study's data has no tokenizer (a synthetic language or a \
                 token file): give token ids"
                    .into(),
            ),
        }
    };
    raw.iter()
        .map(|r| {
            let at = |why: String| format!("line {}: {why}", r.line);
            let ctx = ids(&r.context).map_err(at)?;
            let choices = r
                .choices
                .iter()
                .map(&ids)
                .collect::<Result<Vec<_>, _>>()
                .map_err(at)?;
            if ctx.is_empty() {
                return Err(at(
                    "`context` is empty: the first choice token needs one before it".into(),
                ));
            }
            if let Some(k) = choices.iter().position(Vec::is_empty) {
                return Err(at(format!("`choices[{k}]` is empty")));
            }
            if let Some(id) = ctx
                .iter()
                .chain(choices.iter().flatten())
                .find(|&&id| id >= vocab)
            {
                return Err(at(format!(
                    "token id {id} is not below the vocabulary, {vocab}"
                )));
            }
            let longest = choices.iter().map(Vec::len).max().unwrap_or(0);
            if ctx.len() + longest > context + 1 {
                return Err(at(format!(
                    "the context ({} tokens) with its longest choice ({longest}) is longer \
                     than the model's context of {context} tokens (+ 1 predicted)",
                    ctx.len()
                )));
            }
            Ok(Item {
                context: ctx,
                choices,
                answer: r.answer,
            })
        })
        .collect()
}

/// sha256 of a task file's bytes, hex.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn reads_text_and_token_items() {
        let items = parse(
            b"{\"context\": \"ab\", \"choices\": [\"c\", \"d\"], \"answer\": 1}\n\n\
              {\"context\": [1, 2], \"choices\": [[3], [4, 5], [6]], \"answer\": 2}\n",
        )
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].line, 3);
        assert_eq!(items[1].choices[1], Seq::Ids(vec![4, 5]));
        let bytes = |s: &str| s.bytes().map(u32::from).collect::<Vec<u32>>();
        let tok = tokenize(&items, Some(&bytes), 256, 4).unwrap();
        assert_eq!(tok[0].context, vec![97, 98]);
        assert_eq!(tok[0].choices[1], vec![100]);
        assert_eq!(tok[1].answer, 2);
    }

    #[test]
    fn every_bad_item_is_named_by_its_line() {
        assert!(
            err("{\"context\": \"a\", \"choices\": [], \"answer\": 0}")
                .starts_with("line 1: `choices` is empty")
        );
        assert!(
            err("{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"answer\": 2}")
                .contains("line 1: `answer` 2 is out of range")
        );
        assert!(
            err("\n{\"context\": \"a\", \"choices\": [\"b\"], \"answer\": 0}")
                .starts_with("line 2: `choices` holds one")
        );
        assert!(err("{oops").starts_with("line 1: not a task item"));
        assert!(
            err("{\"context\": \"a\", \"choices\": [\"b\", [1]], \"answer\": 0}")
                .contains("mixes text")
        );
        assert!(
            err("{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"answer\": -1}")
                .contains("`answer` is `-1`")
        );
        assert!(
            err("{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"answer\": 0, \"x\": 1}")
                .contains("unknown field")
        );
        let bad =
            parse(b"{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"answer\": 0}\n\xff\n");
        assert!(bad.unwrap_err().starts_with("line 2: not valid UTF-8"));
        assert_eq!(err(""), "holds no item");
        let items =
            parse(b"{\"context\": [1, 2, 3], \"choices\": [[4, 5], [6]], \"answer\": 0}").unwrap();
        let long = tokenize(&items, None, 16, 3).unwrap_err();
        assert!(
            long.starts_with("line 1: the context (3 tokens) with its longest choice (2)"),
            "{long}"
        );
        assert!(
            tokenize(&items, None, 5, 8)
                .unwrap_err()
                .contains("token id 5 is not below")
        );
        let text =
            parse(b"{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"answer\": 0}").unwrap();
        assert!(
            tokenize(&text, None, 256, 8)
                .unwrap_err()
                .contains("has no tokenizer")
        );
    }
}
