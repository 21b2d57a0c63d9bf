//! Trained BPE tokenizers, kept so a corpus's tokenizer is trained once — not once per run
//! (`train-point` × jobs). Training is deterministic (`bpe::tests`), so a tokenizer read
//! back is the one training would make: each is filed under the sha256 of the text it was
//! trained on and the vocabulary, as `bpe/<key>.json` in the content-hash cache's folder
//! (`$SCALEBOOK_CACHE`, else `$XDG_CACHE_HOME/scalebook`, else `~/.cache/scalebook`). It is
//! a cache: unreadable, unwritable or not a tokenizer of that vocabulary means training.

use sha2::{Digest, Sha256};

use super::bpe::Bpe;
use super::identity::{cache_dir, hex};

/// The tokenizer of `vocab` tokens trained on `text`, from the cache or trained now (and
/// cached).
pub fn trained(text: &[u8], vocab: u32) -> Bpe {
    trained_in(cache_dir().map(|d| d.join("bpe")).as_deref(), text, vocab)
}

/// [`trained`] with the cache in `folder` (none: always trained).
fn trained_in(folder: Option<&std::path::Path>, text: &[u8], vocab: u32) -> Bpe {
    let mut h = Sha256::new();
    h.update(vocab.to_le_bytes());
    h.update(text);
    let path = folder.map(|d| d.join(format!("{}.json", hex(&h.finalize()))));
    if let Some(bpe) = path
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|bytes| serde_json::from_slice::<Bpe>(&bytes).ok())
        .filter(|b| b.vocab == vocab)
    {
        return bpe;
    }
    let bpe = Bpe::train(text, vocab);
    if let Some(path) = &path
        && let Some(dir) = path.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        let _ = crate::files::atomic::write_atomic(
            path,
            crate::record::tokenizer_json(&bpe).as_bytes(),
        );
    }
    bpe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_tokenizer_is_the_trained_one() {
        let dir = std::env::temp_dir().join(format!("scalebook-bpe-cache-{}", std::process::id()));
        let text = b"the cat sat on the mat; the cat ate the rat. ".repeat(20);
        let first = trained_in(Some(&dir), &text, 300);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let entry = std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        // Read back, not trained: a planted tokenizer of that key is what comes back.
        let planted = Bpe {
            vocab: 300,
            merges: vec![(116, 104)],
        };
        std::fs::write(&entry, crate::record::tokenizer_json(&planted)).unwrap();
        assert_eq!(trained_in(Some(&dir), &text, 300), planted);
        // A damaged entry is trained again, not trusted.
        std::fs::write(&entry, "{").unwrap();
        assert_eq!(trained_in(Some(&dir), &text, 300), first);
        assert_eq!(first, Bpe::train(&text, 300));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
