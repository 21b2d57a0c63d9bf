//! `tasks:`: the task files every evaluation scores. Each file is read and checked here,
//! item by item (one line naming the file and line for the first bad one): its JSON, its
//! choices and answer, and — where the study's tokens are known without training a tokenizer
//! (token ids, or text read byte by byte) — its ids against the vocabulary and its lengths
//! against the model's context. Text items of a BPE study are tokenized, and their lengths
//! checked, when a run opens the task (before it trains).

use super::Validator;
use crate::data::{DataSpec, Tokenizer};
use crate::study::TrainingPlan;
use crate::study::file::TaskFile;
use crate::study::metrics::{Metric, recorded};
use crate::study::tasks::{self, TaskIdentity, TaskSpec};

/// The longest task name.
const MAX_NAME: usize = 48;

impl Validator {
    pub(super) fn tasks(
        &mut self,
        files: Option<&[TaskFile]>,
        plan: &TrainingPlan,
    ) -> Vec<TaskSpec> {
        let Some(files) = files else {
            return Vec::new();
        };
        if files.is_empty() {
            self.error(
                "tasks",
                "is empty: list at least one task file, or remove it",
            );
        }
        let builtin: Vec<String> = Metric::ALL.into_iter().flat_map(recorded).collect();
        let mut out: Vec<TaskSpec> = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let field = format!("tasks[{i}]");
            if !super::measured::is_plain_name(&f.name, MAX_NAME) {
                self.error(
                    format!("{field}.name"),
                    format!(
                        "`{}` is not a task name: use 1–{MAX_NAME} lower-case letters, digits \
                         and `_`, starting with a letter",
                        f.name.escape_debug()
                    ),
                );
                continue;
            }
            if out.iter().any(|t| t.identity.name == f.name) {
                self.error(
                    format!("{field}.name"),
                    format!("`{}` is listed twice", f.name),
                );
                continue;
            }
            let names = tasks::recorded(&f.name);
            if let Some(clash) = names
                .iter()
                .find(|n| builtin.contains(n) || plan.metrics.contains(n))
            {
                self.error(
                    format!("{field}.name"),
                    format!("records `{clash}`, which a metric records too: name it otherwise"),
                );
                continue;
            }
            let Some(path) = self.existing_file(&format!("{field}.path"), &f.path) else {
                continue;
            };
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    self.error(
                        format!("{field}.path"),
                        format!("cannot read `{}`: {e}", path.display()),
                    );
                    continue;
                }
            };
            if let Err(why) = check(&bytes, plan) {
                self.error(
                    format!("{field}.path"),
                    format!("{}: {why}", path.display()),
                );
                continue;
            }
            out.push(TaskSpec {
                identity: TaskIdentity {
                    name: f.name.clone(),
                    score: f.score.unwrap_or_default(),
                    sha256: tasks::sha256(&bytes),
                },
                path,
            });
        }
        out
    }
}

/// A task file's items against the plan: parsed, and tokenized and measured where the
/// study's tokens are known now.
fn check(bytes: &[u8], plan: &TrainingPlan) -> Result<(), String> {
    let items = tasks::parse(bytes)?;
    let vocab = DataSpec::vocab(&plan.data) as u32;
    let context = plan.model.context as usize;
    let by_bytes = |s: &str| s.bytes().map(u32::from).collect::<Vec<u32>>();
    match &plan.data {
        DataSpec::Text(t) if matches!(t.tokenizer, Tokenizer::Bpe { .. }) => {
            // Ids are checked now; text waits for the trained tokenizer.
            let ids: Vec<_> = items
                .into_iter()
                .filter(|r| matches!(r.context, tasks::Seq::Ids(_)))
                .collect();
            tasks::tokenize(&ids, None, vocab, context).map(|_| ())
        }
        DataSpec::Text(_) => tasks::tokenize(&items, Some(&by_bytes), vocab, context).map(|_| ()),
        _ => tasks::tokenize(&items, None, vocab, context).map(|_| ()),
    }
}
