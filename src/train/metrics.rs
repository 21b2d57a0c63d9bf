//! Metrics measured at every evaluation (the study's `metrics:`, see
//! [`crate::study::metrics`]), from the same forward pass as the validation loss: each
//! position's most likely token and its probability, tallied against what came.

use std::collections::BTreeMap;

use crate::data::facts::{FactsLanguage, SEP};
use crate::data::source::TokenSource;
use crate::model::cpu::kernels::Top;
use crate::study::metrics::{FACT_DECILES, Metric, decile_name};

/// What a run's evaluations measure beyond the loss.
pub struct Scorer<'a> {
    wanted: Vec<Metric>,
    /// The facts language, to find each value's fact and its frequency decile.
    facts: Option<&'a FactsLanguage>,
    /// The Zipf–Markov language's most likely token at each validation target, in order.
    most_likely: Option<Vec<u32>>,
}

/// One decile's answers: (items, correct, confident, correct among confident), and the sum of
/// the value's negative log-likelihood over its items.
#[derive(Default, Clone, Copy)]
struct Answers([u64; 4], f64);

/// Counts over one evaluation.
#[derive(Default)]
pub struct Tally {
    tokens: u64,
    top1: u64,
    deciles: [Answers; FACT_DECILES],
    /// Targets compared with the language's own prediction: (counted, the model agreed with
    /// it, it was the token that came).
    markov: [u64; 3],
}

impl<'a> Scorer<'a> {
    /// The scorer of the metrics named `names` on `source`'s validation set (`context`,
    /// `eval_tokens`); `facts` needs the facts language, `markov` the Zipf–Markov one.
    pub fn new(
        names: &[String],
        source: &'a TokenSource,
        context: usize,
        eval_tokens: usize,
    ) -> Result<Scorer<'a>, String> {
        let wanted = names
            .iter()
            .map(|n| Metric::parse(n).ok_or_else(|| format!("the engine measures no metric `{n}`")))
            .collect::<Result<Vec<Metric>, String>>()?;
        let facts = match (wanted.contains(&Metric::Facts), source.facts()) {
            (false, _) => None,
            (true, Some(lang)) => Some(lang),
            (true, None) => {
                return Err("metric `facts` needs the facts language (data.facts)".into());
            }
        };
        let most_likely = match wanted.contains(&Metric::Markov) {
            false => None,
            true => Some(source.validation_most_likely(context, eval_tokens).ok_or(
                "metric `markov` needs the Zipf–Markov language (synthetic, without facts)",
            )?),
        };
        Ok(Scorer {
            wanted,
            facts,
            most_likely,
        })
    }

    /// Whether an evaluation measures anything but the loss.
    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty()
    }

    /// Count the positions of sequences of `context` tokens back to back: `inputs`,
    /// `targets` and `top` (each position's most likely token, its probability and the
    /// target's negative log-likelihood); the targets are the validation set's from target
    /// `at` on.
    pub fn add(
        &self,
        tally: &mut Tally,
        (context, at): (usize, usize),
        inputs: &[u32],
        targets: &[u32],
        top: &[Top],
    ) {
        tally.tokens += targets.len() as u64;
        tally.top1 += targets
            .iter()
            .zip(top)
            .filter(|(y, t)| **y == t.best)
            .count() as u64;
        if let Some(best) = self
            .most_likely
            .as_ref()
            .and_then(|b| b.get(at..at + targets.len()))
        {
            for ((y, t), b) in targets.iter().zip(top).zip(best) {
                tally.markov[0] += 1;
                tally.markov[1] += u64::from(t.best == *b);
                tally.markov[2] += u64::from(y == b);
            }
        }
        let Some(facts) = &self.facts else { return };
        // A value follows `SEP, a, b`, all three inside the model's window.
        for i in (0..inputs.len()).filter(|i| i % context >= 2) {
            let (a, b) = (inputs[i - 1], inputs[i]);
            if inputs[i - 2] != SEP || a == SEP || b == SEP {
                continue;
            }
            let Some(k) = facts.fact_of(a, b) else {
                continue;
            };
            let decile = k * FACT_DECILES / facts.facts();
            let Top { best, p, nll } = top[i];
            let right = best == targets[i];
            let confident = p > 0.5;
            tally.deciles[decile].1 += f64::from(nll);
            let d = &mut tally.deciles[decile].0;
            d[0] += 1;
            d[1] += u64::from(right);
            d[2] += u64::from(confident);
            d[3] += u64::from(confident && right);
        }
    }

    /// The metrics of one evaluation whose loss was `loss`: the names the record carries.
    pub fn finish(&self, tally: &Tally, loss: f64) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for metric in &self.wanted {
            match metric {
                Metric::Top1 if tally.tokens > 0 => {
                    out.insert("top1".into(), tally.top1 as f64 / tally.tokens as f64);
                }
                Metric::Perplexity => {
                    out.insert("perplexity".into(), loss.exp());
                }
                Metric::Facts => facts_metrics(tally, &mut out),
                Metric::Markov if tally.markov[0] > 0 => {
                    let [n, agree, ceiling] = tally.markov.map(|x| x as f64);
                    out.insert("markov_agreement".into(), agree / n);
                    out.insert("markov_ceiling".into(), ceiling / n);
                }
                _ => {}
            }
        }
        out.retain(|_, v| v.is_finite());
        out
    }
}

fn facts_metrics(tally: &Tally, out: &mut BTreeMap<String, f64>) {
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    let mut all = [0u64; 4];
    let nll: f64 = tally.deciles.iter().map(|a| a.1).sum();
    for (d, answers) in tally.deciles.iter().enumerate() {
        let [items, right, ..] = answers.0;
        for (sum, x) in all.iter_mut().zip(answers.0) {
            *sum += x;
        }
        if let Some(r) = ratio(right, items) {
            out.insert(decile_name(d), r);
        }
    }
    let [items, right, confident, confident_right] = all;
    let named = [
        ("facts_recall", ratio(right, items)),
        ("facts_precision", ratio(confident_right, confident)),
        ("facts_confident", ratio(confident, items)),
        ("facts_nll", (items > 0).then(|| nll / items as f64)),
    ];
    for (name, value) in named {
        if let Some(v) = value {
            out.insert(name.into(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model that knows the facts of the five frequent deciles and none of the others,
    /// scored on windows that start mid-record: the tally counts exactly the values whose key
    /// lies in the window (found here from the stream's 4-token period, not from `SEP`), per
    /// decile, and the top-1 accuracy over every position.
    #[test]
    fn facts_recall_counts_each_value_after_its_key_by_decile() {
        let lang = FactsLanguage::new(16, 40, 1.1, 3);
        let keys = lang.key_index();
        let scorer = Scorer {
            wanted: vec![Metric::Top1, Metric::Perplexity, Metric::Facts],
            facts: Some(&lang),
            most_likely: None,
        };
        let mut stream = lang.stream(3, 9);
        let flat: Vec<u32> = (0..20_000).map(|_| stream.next_with_p().0).collect();
        let context = 13;
        let mut tally = Tally::default();
        // Expected, per decile: [items, correct, confident, confident and correct].
        let mut want = [[0u64; 4]; FACT_DECILES];
        let (mut tokens, mut top1) = (0u64, 0u64);
        // Each value's −ln p: 0.25 for a known fact, 2.5 for an unknown one (0.75 elsewhere).
        let mut nll_sum = 0.0f64;
        for off in (1..flat.len() - context - 1).step_by(context * 3) {
            let window = &flat[off..off + context + 1];
            let (inputs, targets) = (&window[..context], &window[1..]);
            let mut top = Vec::new();
            for (j, &y) in targets.iter().enumerate() {
                let t = off + j + 1;
                let (guess, p, nll) = if t % 4 == 3 && j >= 2 {
                    let k = keys[&(flat[t - 2], flat[t - 1])] as usize;
                    let known = k < lang.facts() / 2;
                    let guess = if known {
                        lang.value(k)
                    } else {
                        lang.value(k) % 15 + 1
                    };
                    let w = &mut want[k * FACT_DECILES / lang.facts()];
                    w[0] += 1;
                    w[1] += u64::from(guess == y);
                    w[2] += u64::from(known);
                    w[3] += u64::from(known && guess == y);
                    let nll = if known { 0.25 } else { 2.5 };
                    nll_sum += f64::from(nll);
                    (guess, if known { 0.9 } else { 0.2 }, nll)
                } else {
                    (y, 0.3, 0.75)
                };
                tokens += 1;
                top1 += u64::from(guess == y);
                top.push(Top {
                    best: guess,
                    p,
                    nll,
                });
            }
            scorer.add(&mut tally, (context, 0), inputs, targets, &top);
        }
        let got = scorer.finish(&tally, 1.5);
        assert_eq!(got["top1"], top1 as f64 / tokens as f64);
        assert_eq!(got["perplexity"], 1.5f64.exp());
        let sum = |i: usize| want.iter().map(|w| w[i]).sum::<u64>() as f64;
        assert_eq!(got["facts_recall"], sum(1) / sum(0));
        assert_eq!(got["facts_precision"], sum(3) / sum(2));
        assert_eq!(got["facts_confident"], sum(2) / sum(0));
        // The task loss: the mean −ln p of the values (an f32 per item, summed in f64).
        assert!(
            (got["facts_nll"] - nll_sum / sum(0)).abs() < 1e-12,
            "{got:?}"
        );
        assert!(got["facts_nll"] > 0.25 && got["facts_nll"] < 2.5);
        for (d, w) in want.iter().enumerate() {
            assert!(w[0] > 0, "decile {d} has items");
            assert_eq!(
                got[&decile_name(d)],
                w[1] as f64 / w[0] as f64,
                "decile {d}"
            );
        }
        // Known facts are recalled about as often as the value noise allows; unknown ones
        // hardly ever.
        let ceiling = lang.recall_ceiling();
        assert!((got["facts_recall_d1"] - ceiling).abs() < 0.05, "{got:?}");
        assert!(got["facts_recall_d10"] < 0.1, "{got:?}");
        // Without `facts`, no facts numbers; without anything, nothing.
        let plain = Scorer {
            wanted: vec![Metric::Top1],
            facts: None,
            most_likely: None,
        };
        assert_eq!(
            plain.finish(&tally, 1.5).keys().collect::<Vec<_>>(),
            ["top1"]
        );
    }

    /// The Zipf–Markov language's own most likely token at each validation target: a model
    /// that predicts it agrees everywhere and is as accurate as the ceiling says; the ceiling
    /// (the mean of the true distribution's top probability) is at least e^(−H) (Jensen),
    /// and beats always predicting the commonest token.
    #[test]
    fn the_markov_ceiling_is_the_languages_own_top1() {
        use crate::data::{DataSpec, SyntheticSpec};
        let spec = DataSpec::Synthetic(SyntheticSpec {
            vocab: 32,
            order: 2,
            zipf: 1.1,
            facts: None,
        });
        let (context, eval_tokens) = (16, 16_384);
        let source = TokenSource::open(&spec, 7, context, eval_tokens).unwrap();
        let names = ["markov".to_string(), "top1".to_string()];
        let scorer = Scorer::new(&names, &source, context, eval_tokens).unwrap();
        let (val, _) = source.validation(context, eval_tokens);
        let best = source.validation_most_likely(context, eval_tokens).unwrap();
        let (mut oracle, mut commonest) = (Tally::default(), Tally::default());
        let mut common_hits = 0;
        for (s, seq) in val.chunks(context + 1).enumerate() {
            let (inputs, targets) = (&seq[..context], &seq[1..]);
            let at = s * context;
            let top: Vec<Top> = best[at..at + context]
                .iter()
                .map(|&b| Top {
                    best: b,
                    p: 0.5,
                    nll: 1.0,
                })
                .collect();
            scorer.add(&mut oracle, (context, at), inputs, targets, &top);
            let zeros = vec![
                Top {
                    best: 0,
                    p: 0.5,
                    nll: 1.0,
                };
                context
            ];
            scorer.add(&mut commonest, (context, at), inputs, targets, &zeros);
            common_hits += targets.iter().filter(|&&y| y == 0).count();
        }
        let got = scorer.finish(&oracle, 1.0);
        assert_eq!(got["markov_agreement"], 1.0);
        assert_eq!(got["markov_ceiling"], got["top1"]);
        let entropy = crate::data::synthetic::SyntheticLanguage::new(
            &SyntheticSpec {
                vocab: 32,
                order: 2,
                zipf: 1.1,
                facts: None,
            },
            7,
        )
        .entropy(200_000)
        .0;
        assert!(
            got["markov_ceiling"] > (-entropy).exp() - 0.02,
            "{got:?} H = {entropy}"
        );
        let common = scorer.finish(&commonest, 1.0);
        let tokens = (val.len() / (context + 1) * context) as f64;
        assert_eq!(common["top1"], common_hits as f64 / tokens);
        assert!(common["top1"] < got["markov_ceiling"], "{common:?} {got:?}");
        assert!(common["markov_agreement"] < 1.0);
        // Not the facts language's metric.
        let facts = DataSpec::Synthetic(SyntheticSpec {
            vocab: 16,
            order: 1,
            zipf: 1.1,
            facts: Some(20),
        });
        let source = TokenSource::open(&facts, 7, context, eval_tokens).unwrap();
        assert!(Scorer::new(&names, &source, context, eval_tokens).is_err());
    }
}
