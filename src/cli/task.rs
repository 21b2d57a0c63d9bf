//! `scalebook task cloze STUDY --out FILE`: write a task file for the study's `tasks:` — a
//! cloze task from its text corpus's validation split ([`crate::data::cloze`]).

use std::path::PathBuf;

use super::{Failure, exit, load_study};
use crate::data::cloze;
use crate::data::source::TokenSource;
use crate::data::{DataSpec, Tokenizer};
use crate::study::Source;

#[derive(Debug, clap::Subcommand)]
pub enum Which {
    /// A cloze task from a text corpus's validation split: each item the text before a word,
    /// the choices that word and distractors of its frequency band (chance: 1/choices).
    Cloze(ClozeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ClozeArgs {
    /// The study file (YAML) whose text corpus and model context the task is for.
    pub study: PathBuf,
    /// The task file to write (JSONL).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Items to write.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub items: u64,
    /// Choices per item (the answer and its distractors).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(2..=64))]
    pub choices: u64,
    /// Seed of the positions and distractors (default: the study's).
    #[arg(long)]
    pub seed: Option<u64>,
}

pub fn run(which: &Which) -> Result<(), Failure> {
    let Which::Cloze(args) = which;
    let usage = |m: String| Failure::new(exit::USAGE, m);
    let study = load_study(&args.study)?;
    let Source::Train(t) = &study.source else {
        return Err(usage(format!(
            "{}: the cloze task reads the study's text corpus; this study imports results",
            args.study.display()
        )));
    };
    let DataSpec::Text(text_spec) = &t.data else {
        return Err(usage(format!(
            "{}: the cloze task reads a text corpus (`data.source: text`); this study's data is \
             {}",
            args.study.display(),
            t.data.describe()
        )));
    };
    let mut bytes = Vec::new();
    for path in &text_spec.files {
        let b = std::fs::read(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
        bytes.extend_from_slice(&b);
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        usage(format!(
            "the corpus is not valid UTF-8 at byte {}",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let cut = floor_char(
        &text,
        (text.len() as f64 * (1.0 - text_spec.val_fraction)) as usize,
    );
    // A BPE split falls on a token, near the byte cut: start the items 1 % of the corpus
    // past it, so every item lies in the validation split.
    let bpe = matches!(text_spec.tokenizer, Tokenizer::Bpe { .. });
    let start = if bpe {
        floor_char(&text, cut + text.len() / 100)
    } else {
        cut
    };
    let context = t.model.context as usize;
    let seed = args.seed.unwrap_or(study.seed);
    let source = if bpe {
        Some(
            TokenSource::open(&t.data, study.seed, context, t.train.eval_tokens as usize)
                .map_err(|e| usage(e.to_string()))?,
        )
    } else {
        None
    };
    let tokens = |s: &str| match &source {
        Some(src) => src.encode(s).map_or(s.len(), |v| v.len()),
        None => s.len(),
    };
    let (items, choices) = (args.items as usize, args.choices as usize);
    let built = cloze::build(
        &text[..cut],
        &text[start..],
        (items, choices),
        &tokens,
        context + 1,
        seed,
    );
    if built.len() < items {
        return Err(usage(format!(
            "the validation split yields {} cloze items of the {items} asked for (each needs a \
             word seen twice in training whose frequency band holds {} others): ask for fewer \
             (--items) or hold out more text (data.val_fraction)",
            built.len(),
            choices - 1
        )));
    }
    let mut out = String::new();
    for item in &built {
        let line = serde_json::json!({
            "context": item.context,
            "choices": item.choices,
            "answer": item.answer,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    crate::files::atomic::write_atomic(&args.out, out.as_bytes())
        .map_err(|e| Failure::new(exit::INTERNAL, format!("{}: {e}", args.out.display())))?;
    eprintln!(
        "{}: {} cloze items, {choices} choices each (chance {:.1} %), from the validation split \
         of {}",
        args.out.display(),
        built.len(),
        100.0 / choices as f64,
        t.data.describe()
    );
    Ok(())
}

/// The largest char boundary of `s` at or below `i`.
fn floor_char(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
