//! The built-in synthetic language: a mixture of Markov orders over a Zipf-shaped vocabulary,
//! with the true probability of every emitted token known exactly.
//!
//! Next-token distribution after history h (most recent token last):
//!
//!   p(x | h) = w₀·u(x) + Σ_{k=1..K} w_k · Σ_j π_{k,j}·[c_{k,j}(h) = x]
//!
//! - u is the Zipf law u(x) ∝ (x + 1)^(−s) over the vocabulary;
//! - for each order k, the last k tokens are hashed with the seed into S = 4 candidate tokens
//!   c_{k,j} (each drawn from u, so frequent tokens are frequent successors, as in text) and
//!   Dirichlet(1) weights π_{k,j} — nothing is stored per context, so the language is
//!   unbounded in length and its state is only the last K tokens;
//! - w₀ = 0.1 keeps every token possible (p > 0, finite loss); w_k = 0.9/K.
//!
//! A model that knows nothing beats nothing; one that learns the order-1 table (V contexts)
//! gets most of the way; orders 2..K have V^k contexts, Zipf-weighted, so more parameters and
//! more tokens keep buying loss — a power-law regime, as in natural text. The entropy rate is
//! the irreducible loss E a fitted law should approach.

use super::SyntheticSpec;
use super::facts::{FactsLanguage, FactsStream};
use crate::rng::{SplitMix64, hash2, mix64, unit};

/// Candidates per (order, context).
const CANDIDATES: usize = 4;
/// Weight of the unigram component.
const UNIGRAM_WEIGHT: f64 = 0.1;
/// Longest supported order (the validator enforces the same bound).
pub const MAX_ORDER: usize = 8;

/// Stream ids: independent token streams of one language.
pub const TRAIN_STREAM: u64 = 0;
pub const VALIDATION_STREAM: u64 = 1;
pub const ENTROPY_STREAM: u64 = 2;

/// Tokens sampled to estimate the entropy rate (2²⁰: the quickstart language's estimate then
/// has a standard error of 0.0013 nats/token).
pub const ENTROPY_SAMPLE: usize = 1 << 20;

/// One language: the study's synthetic spec plus the seed.
#[derive(Debug, Clone)]
pub struct SyntheticLanguage {
    vocab: usize,
    order: usize,
    seed: u64,
    /// Cumulative Zipf probabilities, for inverse-CDF sampling.
    cdf: Vec<f64>,
    /// Zipf probabilities.
    unigram: Vec<f64>,
    /// The facts language, when the spec asks for it (then the fields above are unused).
    facts: Option<FactsLanguage>,
    /// The study's seed (the facts language derives its own streams from it).
    study_seed: u64,
}

/// The candidates and weights of every order for one history.
struct Candidates {
    tokens: [[u32; CANDIDATES]; MAX_ORDER],
    weights: [[f64; CANDIDATES]; MAX_ORDER],
}

impl SyntheticLanguage {
    pub fn new(spec: &SyntheticSpec, seed: u64) -> Self {
        let vocab = spec.vocab as usize;
        let raw: Vec<f64> = (0..vocab)
            .map(|x| ((x + 1) as f64).powf(-spec.zipf))
            .collect();
        let total: f64 = raw.iter().sum();
        let unigram: Vec<f64> = raw.iter().map(|p| p / total).collect();
        let mut cdf = Vec::with_capacity(vocab);
        let mut acc = 0.0;
        for p in &unigram {
            acc += p;
            cdf.push(acc);
        }
        SyntheticLanguage {
            vocab,
            order: (spec.order as usize).clamp(1, MAX_ORDER),
            seed: mix64(seed ^ 0x5ca1_ab1e),
            cdf,
            unigram,
            facts: spec
                .facts
                .map(|k| FactsLanguage::new(spec.vocab, k, spec.zipf, seed)),
            study_seed: seed,
        }
    }

    /// The facts language, when this is one.
    pub fn facts(&self) -> Option<&FactsLanguage> {
        self.facts.as_ref()
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Inverse CDF of the Zipf law at uniform `u`.
    #[inline]
    fn zipf_token(&self, u: f64) -> u32 {
        let target = u * self.cdf[self.vocab - 1];
        self.cdf
            .partition_point(|&c| c <= target)
            .min(self.vocab - 1) as u32
    }

    /// Candidates of every order for `history` (oldest first, length `order`).
    fn candidates(&self, history: &[u32]) -> Candidates {
        let mut out = Candidates {
            tokens: [[0; CANDIDATES]; MAX_ORDER],
            weights: [[0.0; CANDIDATES]; MAX_ORDER],
        };
        let mut h = self.seed;
        for k in 0..self.order {
            // Order k+1 hashes the last k+1 tokens: extend the previous order's hash.
            let token = history[history.len() - 1 - k];
            h = hash2(h, u64::from(token) + 1);
            let context = hash2(h, k as u64);
            let mut total = 0.0;
            for j in 0..CANDIDATES {
                let bits = hash2(context, j as u64);
                out.tokens[k][j] = self.zipf_token(unit(bits));
                // −ln U ~ Exp(1); normalised exponentials are Dirichlet(1).
                let w = -(1.0 - unit(mix64(bits ^ 0xd1b5_4a32_d192_ed03))).ln();
                out.weights[k][j] = w;
                total += w;
            }
            for w in &mut out.weights[k] {
                *w /= total;
            }
        }
        out
    }

    /// Probability of `token` under candidates `c`.
    fn probability(&self, c: &Candidates, token: u32) -> f64 {
        let order_weight = (1.0 - UNIGRAM_WEIGHT) / self.order as f64;
        let mut p = UNIGRAM_WEIGHT * self.unigram[token as usize];
        for k in 0..self.order {
            for j in 0..CANDIDATES {
                if c.tokens[k][j] == token {
                    p += order_weight * c.weights[k][j];
                }
            }
        }
        p
    }

    /// A stream of tokens; distinct ids give independent streams.
    pub fn stream(&self, id: u64) -> SyntheticStream<'_> {
        SyntheticStream {
            language: self,
            rng: SplitMix64::new(hash2(self.seed, id)),
            history: vec![0; self.order],
            facts: self.facts.as_ref().map(|f| f.stream(self.study_seed, id)),
        }
    }

    /// Entropy rate estimate: mean −ln p over `n` tokens of the entropy stream, with a
    /// standard error from 64 batch means (tokens are correlated; batch means are not).
    /// The facts language's rate is exact (standard error 0).
    pub fn entropy(&self, n: usize) -> (f64, f64) {
        if let Some(f) = &self.facts {
            return (f.entropy(), 0.0);
        }
        let batches = 64;
        let per = (n / batches).max(1);
        let mut stream = self.stream(ENTROPY_STREAM);
        let means: Vec<f64> = (0..batches)
            .map(|_| (0..per).map(|_| -stream.next_with_p().1.ln()).sum::<f64>() / per as f64)
            .collect();
        let mean = means.iter().sum::<f64>() / batches as f64;
        let var = means.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (batches - 1) as f64;
        (mean, (var / batches as f64).sqrt())
    }
}

/// An unbounded token stream; its state is the last K tokens and a generator.
pub struct SyntheticStream<'a> {
    language: &'a SyntheticLanguage,
    rng: SplitMix64,
    history: Vec<u32>,
    facts: Option<FactsStream<'a>>,
}

impl SyntheticStream<'_> {
    /// The next token and its true probability given the stream so far.
    pub fn next_with_p(&mut self) -> (u32, f64) {
        if let Some(f) = &mut self.facts {
            return f.next_with_p();
        }
        let lang = self.language;
        let c = lang.candidates(&self.history);
        let r = self.rng.next_f64();
        let token = if r < UNIGRAM_WEIGHT {
            lang.zipf_token(self.rng.next_f64())
        } else {
            let order_weight = (1.0 - UNIGRAM_WEIGHT) / lang.order as f64;
            let k = (((r - UNIGRAM_WEIGHT) / order_weight) as usize).min(lang.order - 1);
            let mut u = self.rng.next_f64();
            let mut chosen = c.tokens[k][CANDIDATES - 1];
            for j in 0..CANDIDATES {
                if u < c.weights[k][j] {
                    chosen = c.tokens[k][j];
                    break;
                }
                u -= c.weights[k][j];
            }
            chosen
        };
        let p = lang.probability(&c, token);
        self.history.rotate_left(1);
        let last = self.history.len() - 1;
        self.history[last] = token;
        (token, p)
    }

    /// The most likely next token given the stream so far (the least id among equals): what
    /// a model that knew the language would predict. `None` for the facts language.
    pub fn most_likely_next(&self) -> Option<u32> {
        if self.facts.is_some() {
            return None;
        }
        let lang = self.language;
        let c = lang.candidates(&self.history);
        // The unigram's top token (id 0) or one of the orders' candidates.
        let mut best = (0u32, lang.probability(&c, 0));
        for &t in c.tokens[..lang.order].iter().flatten() {
            let p = lang.probability(&c, t);
            if p > best.1 || (p == best.1 && t < best.0) {
                best = (t, p);
            }
        }
        Some(best.0)
    }

    /// Fill `out` with the next tokens.
    pub fn fill(&mut self, out: &mut [u32]) {
        for slot in out {
            *slot = self.next_with_p().0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn language(seed: u64) -> SyntheticLanguage {
        SyntheticLanguage::new(
            &SyntheticSpec {
                vocab: 256,
                order: 3,
                zipf: 1.1,
                facts: None,
            },
            seed,
        )
    }

    #[test]
    fn probabilities_sum_to_one() {
        let lang = language(1);
        for history in [[0u32, 0, 0], [5, 17, 200], [255, 1, 2]] {
            let c = lang.candidates(&history);
            let total: f64 = (0..256).map(|x| lang.probability(&c, x)).sum();
            assert!((total - 1.0).abs() < 1e-12, "{total}");
        }
    }

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let lang = language(1);
        let take = |id| {
            let mut s = lang.stream(id);
            (0..1000).map(|_| s.next_with_p().0).collect::<Vec<_>>()
        };
        assert_eq!(take(TRAIN_STREAM), take(TRAIN_STREAM));
        assert_ne!(take(TRAIN_STREAM), take(VALIDATION_STREAM));
        let other = language(2);
        let mut s = other.stream(TRAIN_STREAM);
        let b: Vec<u32> = (0..1000).map(|_| s.next_with_p().0).collect();
        assert_ne!(take(TRAIN_STREAM), b);
    }

    #[test]
    fn emitted_frequencies_match_true_probabilities() {
        // The reported p must be the law the sampler follows: the mean of p over emitted
        // tokens equals Σ p² in expectation, and for one fixed history the empirical
        // frequencies match p.
        let lang = language(3);
        let history = [7u32, 3, 1];
        let c = lang.candidates(&history);
        let mut rng_stream = lang.stream(9);
        let n = 200_000;
        let mut counts = vec![0usize; 256];
        for _ in 0..n {
            rng_stream.history.copy_from_slice(&history);
            counts[rng_stream.next_with_p().0 as usize] += 1;
        }
        for x in 0..256u32 {
            let p = lang.probability(&c, x);
            let freq = counts[x as usize] as f64 / n as f64;
            assert!(
                (freq - p).abs() < 5.0 * (p / n as f64).sqrt() + 1e-4,
                "{x}: {freq} vs {p}"
            );
        }
    }

    #[test]
    fn entropy_is_well_below_the_unigram_entropy() {
        let lang = language(1);
        let (h, se) = lang.entropy(1 << 18);
        let unigram: f64 = lang.unigram.iter().map(|p| -p * p.ln()).sum();
        assert!(
            h > 0.5 && h < unigram - 0.5,
            "entropy {h} vs unigram {unigram}"
        );
        assert!(se > 0.0 && se < 0.02, "{se}");
    }
}
