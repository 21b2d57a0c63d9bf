//! A byte-level BPE tokenizer trained locally and deterministically (Sennrich et al. 2016;
//! byte-level as in GPT-2, Radford et al. 2019).
//!
//! Training is deterministic by construction — the most frequent pair wins, ties go to the
//! smallest pair — so the same corpus and vocabulary always give the same merges and the saved
//! JSON hashes the same (the run identity depends on it). The `tokenizers` crate's BpeTrainer
//! breaks ties the same way and is already compiled as a dependency of candle-core; moving to it
//! (for its GPT-2 regex pre-tokenizer and speed on large corpora) is a candidate follow-up.
//!
//! Pre-tokenisation splits text into chunks that merges never cross (GPT-2's rule, simplified
//! to ASCII classes): an optional leading space plus a run of letters, of digits, or of other
//! symbols; or a run of whitespace.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// A trained tokenizer: ids 0..256 are bytes, id 256 + i is `merges[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bpe {
    pub vocab: u32,
    pub merges: Vec<(u32, u32)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    Space,
    Other,
}

fn class(b: u8) -> Class {
    if b.is_ascii_alphabetic() || b >= 0x80 {
        Class::Letter
    } else if b.is_ascii_digit() {
        Class::Digit
    } else if b.is_ascii_whitespace() {
        Class::Space
    } else {
        Class::Other
    }
}

/// Split bytes into pre-tokenisation chunks.
pub fn chunks(text: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = start;
        // A single space joins the word that follows it (" the").
        if text[end] == b' ' && end + 1 < text.len() && class(text[end + 1]) != Class::Space {
            end += 1;
        }
        let c = class(text[end]);
        while end < text.len() && class(text[end]) == c {
            // A run of spaces stops before the space that leads the next word.
            if c == Class::Space
                && text[end] == b' '
                && end > start
                && end + 1 < text.len()
                && class(text[end + 1]) != Class::Space
            {
                break;
            }
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

impl Bpe {
    /// Learn `vocab − 256` merges from `text`.
    pub fn train(text: &[u8], vocab: u32) -> Bpe {
        // Unique chunks with counts, in a deterministic order.
        let mut counts: BTreeMap<&[u8], u64> = BTreeMap::new();
        for chunk in chunks(text) {
            *counts.entry(chunk).or_insert(0) += 1;
        }
        let mut words: Vec<(Vec<u32>, u64)> = counts
            .into_iter()
            .map(|(w, c)| (w.iter().map(|&b| u32::from(b)).collect(), c))
            .collect();
        let mut merges = Vec::new();
        let mut next_id = 256u32;
        while next_id < vocab {
            let mut pairs: HashMap<(u32, u32), u64> = HashMap::new();
            for (word, count) in &words {
                for pair in word.windows(2) {
                    *pairs.entry((pair[0], pair[1])).or_insert(0) += count;
                }
            }
            // Most frequent pair; ties go to the smallest pair, so training is deterministic.
            let Some((&best, _)) = pairs
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            else {
                break; // every chunk is a single token: nothing left to merge
            };
            for (word, _) in &mut words {
                merge_in_place(word, best, next_id);
            }
            merges.push(best);
            next_id += 1;
        }
        Bpe {
            vocab: 256 + merges.len() as u32,
            merges,
        }
    }

    /// Encode text: each chunk's bytes, merged in learning order.
    pub fn encode(&self, text: &[u8]) -> Vec<u32> {
        let ranks: HashMap<(u32, u32), u32> = self
            .merges
            .iter()
            .enumerate()
            .map(|(i, &pair)| (pair, 256 + i as u32))
            .collect();
        let mut cache: HashMap<&[u8], Vec<u32>> = HashMap::new();
        let mut out = Vec::with_capacity(text.len() / 2);
        for chunk in chunks(text) {
            let ids = cache.entry(chunk).or_insert_with(|| {
                let mut word: Vec<u32> = chunk.iter().map(|&b| u32::from(b)).collect();
                // Apply the earliest-learned merge present until none applies.
                while let Some((pair, id)) = word
                    .windows(2)
                    .filter_map(|p| ranks.get(&(p[0], p[1])).map(|&id| ((p[0], p[1]), id)))
                    .min_by_key(|&(_, id)| id)
                {
                    merge_in_place(&mut word, pair, id);
                }
                word
            });
            out.extend_from_slice(ids);
        }
        out
    }

    /// Bytes of a token id (for tests and debugging).
    pub fn decode(&self, ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &id in ids {
            self.push_bytes(id, &mut out);
        }
        out
    }

    fn push_bytes(&self, id: u32, out: &mut Vec<u8>) {
        if id < 256 {
            out.push(id as u8);
        } else {
            let (a, b) = self.merges[(id - 256) as usize];
            self.push_bytes(a, out);
            self.push_bytes(b, out);
        }
    }
}

fn merge_in_place(word: &mut Vec<u32>, pair: (u32, u32), id: u32) {
    let mut i = 0;
    let mut out = 0;
    while i < word.len() {
        if i + 1 < word.len() && word[i] == pair.0 && word[i + 1] == pair.1 {
            word[out] = id;
            i += 2;
        } else {
            word[out] = word[i];
            i += 1;
        }
        out += 1;
    }
    word.truncate(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &[u8] = b"the cat sat on the mat. the cat ate 42 rats!\n  the end";

    #[test]
    fn chunks_cover_the_text_exactly() {
        let parts = chunks(TEXT);
        assert_eq!(parts.concat(), TEXT);
        assert_eq!(parts[0], b"the");
        assert_eq!(parts[1], b" cat");
        assert!(parts.contains(&&b" 42"[..]));
    }

    #[test]
    fn training_is_deterministic_and_round_trips() {
        let a = Bpe::train(TEXT, 280);
        let b = Bpe::train(TEXT, 280);
        assert_eq!(a, b);
        assert!(a.vocab > 256 && a.vocab <= 280);
        let ids = a.encode(TEXT);
        assert!(ids.len() < TEXT.len(), "merges shorten the text");
        assert_eq!(a.decode(&ids), TEXT);
        assert!(ids.iter().all(|&id| id < a.vocab));
        // The most frequent pair in the corpus is learned first.
        assert_eq!(a.decode(&[256]), b"at"); // in cat, sat, mat, cat, ate, rats
    }
}
