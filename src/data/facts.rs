//! The *facts* language: many independent pieces of knowledge used with Zipf-distributed
//! frequencies, the setting in which the quantization model of neural scaling (Michaud,
//! Liu, Girit & Tegmark 2023) and Hutter's learning-curve theory (2021) derive power laws in
//! both model size and data, with a floor that is known exactly.
//!
//! The stream is a sequence of 4-token records `[SEP, a, b, v]`:
//!
//! - `SEP` is token 0 (certain once the period is learned);
//! - fact k ∈ {0, …, K−1} is drawn with probability p_k ∝ (k + 1)^(−s) (`zipf` = s);
//! - its key `(a, b)` is a pair of tokens in 1..V, distinct for every fact (an affine
//!   permutation of the (V−1)² pairs, seeded), so the key identifies the fact;
//! - its value `v` is the fact's own token v_k with probability 1 − ε ([`VALUE_NOISE`] = ε),
//!   else a uniform token of 1..V (which may be v_k too).
//!
//! A model that has seen fact k often enough, and has room for it, predicts v_k after its
//! key; one that has not pays ~ln V there. Learning the facts in order of frequency makes the
//! loss above the floor fall as a power law in the number learned. The entropy rate is
//! exact: (H(p) + H_ε) / 4 nats/token, where H(p) is the entropy of the fact distribution
//! (the key tokens carry it, the key being injective) and H_ε the value noise's.

use crate::rng::{SplitMix64, hash2, mix64};

/// Probability that a value token is uniform noise instead of the fact's value.
pub const VALUE_NOISE: f64 = 0.1;

/// The separator token that starts every record.
pub const SEP: u32 = 0;

/// Tokens per record.
const RECORD: usize = 4;

/// One facts language.
#[derive(Debug, Clone)]
pub struct FactsLanguage {
    vocab: usize,
    /// Fact k's probability and cumulative probability.
    p: Vec<f64>,
    cdf: Vec<f64>,
    keys: Vec<(u32, u32)>,
    /// The key permutation i ↦ i·mult + shift (mod the (V−1)² pairs), inverted: a key's fact
    /// is (pair − shift)·`mult_inverse` (mod pairs), when that is below K.
    mult_inverse: u64,
    shift: u64,
    values: Vec<u32>,
    /// Probability of each first key token (summed over the facts that start with it).
    first: Vec<f64>,
}

/// A multiplier coprime with `m` (so i ↦ i·c + shift mod m is a permutation), from the seed.
fn coprime_multiplier(m: u64, seed: u64) -> u64 {
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut c = (mix64(seed) % m).max(1);
    while gcd(c, m) != 1 {
        c = c % m + 1;
    }
    c
}

/// The inverse of `a` modulo `m` (`a` coprime with `m`), by the extended Euclidean algorithm.
fn inverse_mod(a: u64, m: u64) -> u64 {
    let (mut r0, mut r1) = (i128::from(m), i128::from(a % m));
    let (mut t0, mut t1) = (0i128, 1i128);
    while r1 != 0 {
        let q = r0 / r1;
        (r0, r1) = (r1, r0 - q * r1);
        (t0, t1) = (t1, t0 - q * t1);
    }
    t0.rem_euclid(i128::from(m)) as u64
}

impl FactsLanguage {
    /// `facts` facts over a vocabulary of `vocab` tokens (`facts` ≤ (vocab − 1)²), Zipf
    /// exponent `zipf`.
    pub fn new(vocab: u64, facts: u64, zipf: f64, seed: u64) -> Self {
        let v = vocab as usize;
        let pairs = (vocab - 1) * (vocab - 1);
        let k = facts.min(pairs) as usize;
        let raw: Vec<f64> = (0..k).map(|i| ((i + 1) as f64).powf(-zipf)).collect();
        let total: f64 = raw.iter().sum();
        let p: Vec<f64> = raw.iter().map(|x| x / total).collect();
        let mut cdf = Vec::with_capacity(k);
        let mut acc = 0.0;
        for x in &p {
            acc += x;
            cdf.push(acc);
        }
        let seed = mix64(seed ^ 0xfac7_5eed);
        let mult = coprime_multiplier(pairs, seed);
        let shift = mix64(seed ^ 1) % pairs;
        let keys: Vec<(u32, u32)> = (0..k as u64)
            .map(|i| {
                let idx = ((u128::from(i) * u128::from(mult) + u128::from(shift))
                    % u128::from(pairs)) as u64;
                (
                    1 + (idx / (vocab - 1)) as u32,
                    1 + (idx % (vocab - 1)) as u32,
                )
            })
            .collect();
        let values: Vec<u32> = (0..k as u64)
            .map(|i| 1 + (hash2(seed, i) % (vocab - 1)) as u32)
            .collect();
        let mut first = vec![0.0; v];
        for (i, &(a, _)) in keys.iter().enumerate() {
            first[a as usize] += p[i];
        }
        FactsLanguage {
            vocab: v,
            p,
            cdf,
            keys,
            mult_inverse: inverse_mod(mult, pairs),
            shift,
            values,
            first,
        }
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Number of facts, K.
    pub fn facts(&self) -> usize {
        self.keys.len()
    }

    /// Fact `k`'s own value token (what the value noise may replace).
    pub fn value(&self, k: usize) -> u32 {
        self.values[k]
    }

    /// The fact whose key is `(a, b)`, if one is: the key permutation inverted (no table,
    /// whatever the number of facts).
    pub fn fact_of(&self, a: u32, b: u32) -> Option<usize> {
        let v = self.vocab as u64 - 1;
        let (a, b) = (u64::from(a).checked_sub(1)?, u64::from(b).checked_sub(1)?);
        if a >= v || b >= v {
            return None;
        }
        let pairs = v * v;
        let idx = a * v + b;
        let i = (u128::from((idx + pairs - self.shift % pairs) % pairs)
            * u128::from(self.mult_inverse)
            % u128::from(pairs)) as usize;
        (i < self.keys.len()).then_some(i)
    }

    /// Fact index by key `(a, b)`, as a table: the reference [`Self::fact_of`] is tested
    /// against.
    #[cfg(test)]
    pub(crate) fn key_index(&self) -> std::collections::HashMap<(u32, u32), u32> {
        (0u32..).zip(&self.keys).map(|(k, &key)| (key, k)).collect()
    }

    /// The best recall@1 of a value after its key: the fact's own value, which the value noise
    /// keeps with probability 1 − ε + ε/(V − 1).
    pub fn recall_ceiling(&self) -> f64 {
        1.0 - VALUE_NOISE + VALUE_NOISE / (self.vocab - 1) as f64
    }

    /// Exact entropy rate (nats/token).
    pub fn entropy(&self) -> f64 {
        let h_facts: f64 = self.p.iter().map(|p| -p * p.ln()).sum();
        let others = (self.vocab - 1) as f64;
        let right = 1.0 - VALUE_NOISE + VALUE_NOISE / others;
        let wrong = VALUE_NOISE / others;
        let h_value = -right * right.ln() - (others - 1.0) * wrong * wrong.ln();
        (h_facts + h_value) / RECORD as f64
    }

    fn draw_fact(&self, u: f64) -> usize {
        let target = u * self.cdf[self.cdf.len() - 1];
        self.cdf
            .partition_point(|&c| c <= target)
            .min(self.cdf.len() - 1)
    }

    /// A stream of tokens; distinct ids give independent streams.
    pub fn stream(&self, seed: u64, id: u64) -> FactsStream<'_> {
        FactsStream {
            language: self,
            rng: SplitMix64::new(hash2(mix64(seed ^ 0xfac7_5eed), id)),
            position: 0,
            fact: 0,
        }
    }
}

/// An unbounded stream of records.
pub struct FactsStream<'a> {
    language: &'a FactsLanguage,
    rng: SplitMix64,
    position: usize,
    fact: usize,
}

impl FactsStream<'_> {
    /// The next token and its true probability given the stream so far.
    pub fn next_with_p(&mut self) -> (u32, f64) {
        let lang = self.language;
        let out = match self.position {
            0 => (SEP, 1.0),
            1 => {
                self.fact = lang.draw_fact(self.rng.next_f64());
                let a = lang.keys[self.fact].0;
                (a, lang.first[a as usize])
            }
            2 => {
                let (a, b) = lang.keys[self.fact];
                (b, lang.p[self.fact] / lang.first[a as usize])
            }
            _ => {
                let truth = lang.values[self.fact];
                let others = (lang.vocab - 1) as f64;
                let token = if self.rng.next_f64() < VALUE_NOISE {
                    1 + self.rng.below(lang.vocab as u64 - 1) as u32
                } else {
                    truth
                };
                let p = VALUE_NOISE / others
                    + if token == truth {
                        1.0 - VALUE_NOISE
                    } else {
                        0.0
                    };
                (token, p)
            }
        };
        self.position = (self.position + 1) % RECORD;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inverted key permutation finds every fact the key table does, and no fact for a
    /// pair no fact uses, at several sizes (up to every pair a fact).
    #[test]
    fn fact_of_inverts_the_key_table() {
        for (vocab, facts, seed) in [(16, 40, 3), (64, 3969, 1), (256, 16_384, 1), (5, 3, 9)] {
            let lang = FactsLanguage::new(vocab, facts, 1.2, seed);
            let table = lang.key_index();
            for a in 0..vocab as u32 + 1 {
                for b in 0..vocab as u32 + 1 {
                    let want = table.get(&(a, b)).map(|&k| k as usize);
                    assert_eq!(lang.fact_of(a, b), want, "V {vocab}, ({a}, {b})");
                }
            }
        }
    }

    #[test]
    fn keys_are_distinct_and_in_range() {
        let lang = FactsLanguage::new(64, 63 * 63, 1.5, 7);
        let mut keys = lang.keys.clone();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 63 * 63);
        assert!(
            keys.iter()
                .all(|&(a, b)| (1..64).contains(&a) && (1..64).contains(&b))
        );
        assert!(lang.values.iter().all(|v| (1..64).contains(v)));
    }

    /// The mean of −ln p over a long stream is the exact entropy rate; emitted keys follow
    /// the stated probabilities.
    #[test]
    fn sampled_loss_of_the_true_model_is_the_exact_entropy() {
        let lang = FactsLanguage::new(256, 16384, 1.5, 3);
        let mut s = lang.stream(3, 0);
        let n = 400_000;
        let mean = (0..n).map(|_| -s.next_with_p().1.ln()).sum::<f64>() / n as f64;
        let h = lang.entropy();
        assert!((mean - h).abs() < 0.01, "{mean} vs {h}");
        let mut s = lang.stream(3, 1);
        let mut counts = vec![0usize; 256];
        for _ in 0..n {
            let (t, _) = s.next_with_p();
            if s.position == 2 {
                counts[t as usize] += 1;
            }
        }
        let records = (n / 4) as f64;
        for (a, &count) in counts.iter().enumerate().skip(1) {
            let want = lang.first[a];
            let got = count as f64 / records;
            assert!(
                (got - want).abs() < 5.0 * (want / records).sqrt() + 1e-4,
                "{a}"
            );
        }
    }

    #[test]
    fn streams_are_deterministic() {
        let lang = FactsLanguage::new(128, 4000, 1.3, 9);
        let take = |id| {
            let mut s = lang.stream(9, id);
            (0..500).map(|_| s.next_with_p().0).collect::<Vec<_>>()
        };
        assert_eq!(take(0), take(0));
        assert_ne!(take(0), take(1));
    }
}
