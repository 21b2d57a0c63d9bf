//! Task files scored at every evaluation ([`crate::study::tasks`]): every (item, choice) pair
//! is one sequence — the item's context, then the choice — batched through the evaluation's
//! forward pass; a choice's log-likelihood is the sum (or, with `score: mean`, the mean) of
//! the per-token log-likelihoods at its own positions (a mask over the rest, padding
//! included: the causal attention never lets the padding after a sequence reach it).

use std::collections::BTreeMap;

use super::step::Stepper;
use crate::data::source::TokenSource;
use crate::study::tasks::{self, Item, Score, TaskSpec};

/// The study's tasks, read and tokenized for one run.
pub struct TaskSet {
    tasks: Vec<(TaskSpec, Vec<Item>)>,
}

impl TaskSet {
    /// The tasks of `specs`, each file read again, checked against the content hash the run's
    /// identity carries, parsed and tokenized with `source`'s tokenizer; the first problem
    /// names the file (and line).
    pub fn open(
        specs: &[TaskSpec],
        source: &TokenSource,
        context: usize,
    ) -> Result<TaskSet, String> {
        let mut out = Vec::new();
        for spec in specs {
            let path = spec.path.display();
            let bytes = std::fs::read(&spec.path).map_err(|e| format!("task file {path}: {e}"))?;
            if tasks::sha256(&bytes) != spec.identity.sha256 {
                return Err(format!(
                    "task file {path} changed since the study was planned (its sha256 differs): \
                     plan the study again"
                ));
            }
            let raw = tasks::parse(&bytes).map_err(|e| format!("task file {path}: {e}"))?;
            let encode = |s: &str| source.encode(s).unwrap_or_default();
            let tokenizer: Option<tasks::Encode> = source.encode("").is_some().then_some(&encode);
            let items = tasks::tokenize(&raw, tokenizer, source.vocab() as u32, context)
                .map_err(|e| format!("task file {path}: {e}"))?;
            out.push((spec.clone(), items));
        }
        Ok(TaskSet { tasks: out })
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Each task with its tokenized items, in the study's order.
    pub fn each(&self) -> impl Iterator<Item = (&TaskSpec, &[Item])> {
        self.tasks.iter().map(|(s, i)| (s, i.as_slice()))
    }

    /// Score every task with the model as it is, `batch` sequences of `context` tokens at a
    /// time, into `out` (`<name>_accuracy`, `<name>_nll`).
    pub fn score(
        &self,
        stepper: &mut Stepper,
        context: usize,
        batch: usize,
        out: &mut BTreeMap<String, f64>,
    ) -> candle_core::Result<()> {
        for (spec, items) in &self.tasks {
            let nll = choice_nlls(stepper, items, context, batch, spec.identity.score)?;
            let (mut right, mut task_loss) = (0usize, 0.0f64);
            let mut at = 0;
            for item in items {
                let scores = &nll[at..at + item.choices.len()];
                at += item.choices.len();
                // The most likely choice: the lowest negative log-likelihood, the first on a tie.
                let best = (0..scores.len())
                    .min_by(|&a, &b| scores[a].total_cmp(&scores[b]))
                    .unwrap_or(0);
                right += usize::from(best == item.answer);
                task_loss += scores[item.answer];
            }
            let n = items.len() as f64;
            let [accuracy, loss] = spec.recorded();
            out.insert(accuracy, right as f64 / n);
            out.insert(loss, task_loss / n);
        }
        Ok(())
    }
}

/// Each (item, choice) pair's negative log-likelihood, in order: summed over the choice's
/// tokens, or their mean with `Score::Mean`.
fn choice_nlls(
    stepper: &mut Stepper,
    items: &[Item],
    context: usize,
    batch: usize,
    score: Score,
) -> candle_core::Result<Vec<f64>> {
    let pairs: Vec<(&[u32], &[u32])> = items
        .iter()
        .flat_map(|i| {
            i.choices
                .iter()
                .map(|c| (i.context.as_slice(), c.as_slice()))
        })
        .collect();
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(batch.max(1)) {
        let b = chunk.len();
        let (mut inputs, mut targets) = (vec![0u32; b * context], vec![0u32; b * context]);
        for (s, (ctx, choice)) in chunk.iter().enumerate() {
            let seq: Vec<u32> = ctx.iter().chain(choice.iter()).copied().collect();
            let n = seq.len() - 1;
            inputs[s * context..s * context + n].copy_from_slice(&seq[..n]);
            targets[s * context..s * context + n].copy_from_slice(&seq[1..]);
        }
        let (_, top) = stepper.loss_and_top(&inputs, &targets, b)?;
        for (s, (ctx, choice)) in chunk.iter().enumerate() {
            // Choice token j is the target at position |context| − 1 + j.
            let first = s * context + ctx.len() - 1;
            let sum: f64 = top[first..first + choice.len()]
                .iter()
                .map(|t| f64::from(t.nll))
                .sum();
            out.push(match score {
                Score::Sum => sum,
                Score::Mean => sum / choice.len() as f64,
            });
        }
    }
    Ok(out)
}
