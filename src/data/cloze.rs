//! A cloze task from a text corpus's validation split (`scalebook task cloze`): each item is
//! a stretch of validation text cut just before a word, and the choices are that word and
//! distractor words of the same frequency band, so a model cannot pick the answer by its
//! frequency alone — only by the context.
//!
//! - **Words** are maximal runs of alphabetic characters. A word's frequency is its count in
//!   the training split; its band is ⌊log₂ count⌋, so a band's words are within a factor of 2
//!   in frequency of each other.
//! - **Items** start at seeded positions of the validation split: the first word there of at
//!   least 3 letters, seen at least twice in training, whose band holds `choices − 1` other
//!   words, after a space. Its context is the text before that space (at most the model's
//!   context in tokens, cut at
//!   a word boundary when it must be shortened); the choices are the word and its distractors
//!   — drawn at random from its band — each with the space before it, in a seeded order.
//! - **Chance** is 1/`choices`: every choice is a word of the same band.

use std::collections::{BTreeMap, HashMap};

use crate::rng::{SplitMix64, hash2};

/// One cloze item as text.
#[derive(Debug, Clone, PartialEq)]
pub struct ClozeItem {
    pub context: String,
    pub choices: Vec<String>,
    pub answer: usize,
}

/// The words of `text` with their byte offsets.
fn words(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphabetic(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, &text[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out
}

/// Up to `items` cloze items from `validation`, distractors drawn from the word bands of
/// `training`; `tokens` counts a text's tokens under the study's tokenizer and `room` is how
/// many tokens a context and its longest choice may hold together.
pub fn build(
    training: &str,
    validation: &str,
    (items, choices): (usize, usize),
    tokens: &dyn Fn(&str) -> usize,
    room: usize,
    seed: u64,
) -> Vec<ClozeItem> {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for (_, w) in words(training) {
        *counts.entry(w).or_default() += 1;
    }
    // Bands in a fixed order (words sorted), so a seed gives the same items everywhere.
    let mut bands: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    let mut sorted: Vec<(&str, u64)> = counts.iter().map(|(w, c)| (*w, *c)).collect();
    sorted.sort();
    for (w, c) in &sorted {
        if *c >= 2 && w.chars().count() >= 3 {
            bands.entry(c.ilog2()).or_default().push(w);
        }
    }
    let band_of = |w: &str| counts.get(w).filter(|&&c| c >= 2).map(|c| c.ilog2());
    let val_words = words(validation);
    let mut out = Vec::new();
    let mut used = std::collections::HashSet::new();
    let mut rng = SplitMix64::new(hash2(seed, 0xc102e));
    let attempts = items * 20;
    for _ in 0..attempts {
        if out.len() == items || val_words.is_empty() {
            break;
        }
        let from = rng.below(val_words.len() as u64) as usize;
        let Some(k) = (from..val_words.len()).find(|&k| {
            let (at, w) = val_words[k];
            // After a space, which the choices carry: context + answer is the text itself.
            at > 0
                && validation.as_bytes()[at - 1] == b' '
                && w.chars().count() >= 3
                && band_of(w).is_some_and(|b| bands[&b].len() > choices.max(2) - 1)
        }) else {
            continue;
        };
        if !used.insert(k) {
            continue;
        }
        let (at, word) = val_words[k];
        let band = &bands[&band_of(word).unwrap_or(0)];
        // Distractors: distinct words of the band, not the answer.
        let mut picked: Vec<&str> = Vec::new();
        while picked.len() + 1 < choices {
            let w = band[rng.below(band.len() as u64) as usize];
            if w != word && !picked.contains(&w) {
                picked.push(w);
            }
        }
        let answer = rng.below(choices as u64) as usize;
        picked.insert(answer, word);
        let choices: Vec<String> = picked.iter().map(|w| format!(" {w}")).collect();
        let longest = choices.iter().map(|c| tokens(c)).max().unwrap_or(0);
        // The text before the word, without the space the choice carries, shortened at word
        // boundaries until it fits.
        let mut context = &validation[..at - 1];
        while !context.is_empty() && tokens(context) + longest > room {
            let cut = context
                .char_indices()
                .find(|(i, c)| *i > 0 && c.is_whitespace() && *i + 1 < context.len())
                .map(|(i, _)| i + 1)
                .unwrap_or(context.len());
            context = &context[cut..];
        }
        if context.trim().is_empty() {
            continue;
        }
        out.push(ClozeItem {
            context: context.to_string(),
            choices,
            answer,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items cut before a validation word, with distractors of its frequency band, fitting
    /// the room, the same for a seed.
    #[test]
    fn items_are_cut_before_a_word_with_distractors_of_its_band() {
        let mut training = String::new();
        for i in 0..400 {
            // Band 4 (16–31 uses): twelve words; a rare word and a frequent one.
            training.push_str(&format!(
                "word{} ",
                ["alpha", "bravo", "charlie", "delta"][i % 4]
            ));
        }
        let band: Vec<String> = (0..12)
            .map(|k| format!("w{}x", char::from(b'a' + k)))
            .collect();
        for w in &band {
            for _ in 0..20 {
                training.push_str(&format!("{w} "));
            }
        }
        training.push_str("rare");
        let validation = band
            .iter()
            .map(|w| format!("the {w} and {w} then"))
            .collect::<Vec<_>>()
            .join(". ");
        let bytes = |s: &str| s.len();
        let items = build(&training, &validation, (10, 4), &bytes, 40, 7);
        assert_eq!(items.len(), 10);
        for item in &items {
            assert_eq!(item.choices.len(), 4);
            let answer = item.choices[item.answer].trim();
            // Every choice is a word of the band, the answer among them once.
            assert!(
                item.choices
                    .iter()
                    .all(|c| band.iter().any(|w| c == &format!(" {w}"))),
                "{item:?}"
            );
            assert_eq!(
                item.choices.iter().filter(|c| c.trim() == answer).count(),
                1
            );
            // The context is the validation text just before the answer.
            let whole = format!("{}{}", item.context, item.choices[item.answer]);
            assert!(validation.contains(&whole), "{whole}");
            assert!(item.context.len() + 4 <= 40, "{item:?}");
        }
        assert_eq!(items, build(&training, &validation, (10, 4), &bytes, 40, 7));
        assert_ne!(items, build(&training, &validation, (10, 4), &bytes, 40, 8));
    }
}
