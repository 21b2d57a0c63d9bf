//! Where a training step's time goes, by kind of work: each engine entry point records its
//! wall time into a process-wide table when `SCALEBOOK_PROFILE` is set (`scalebook bench
//! train` then prints it). Off, a timer costs one relaxed load.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Kinds of work, in the order they are printed.
#[derive(Debug, Clone, Copy)]
pub enum Section {
    LayerProducts,
    AttentionForward,
    AttentionBackward,
    LayerNorm,
    Gelu,
    BiasAndResidual,
    CrossEntropy,
    Embedding,
    Optimizer,
}

pub const SECTIONS: [(Section, &str); 9] = [
    (
        Section::LayerProducts,
        "layer matrix products (QKV, proj, MLP, head; fwd + bwd)",
    ),
    (
        Section::AttentionForward,
        "attention forward (scores, causal softmax, ·V)",
    ),
    (Section::AttentionBackward, "attention backward"),
    (Section::LayerNorm, "layer norm forward + backward"),
    (Section::Gelu, "GELU forward + backward"),
    (
        Section::BiasAndResidual,
        "bias/residual fills, bias gradients",
    ),
    (Section::CrossEntropy, "softmax cross-entropy"),
    (Section::Embedding, "embeddings forward + backward"),
    (Section::Optimizer, "gradient norm + AdamW"),
];

static TOTALS: [AtomicU64; SECTIONS.len()] = [const { AtomicU64::new(0) }; SECTIONS.len()];

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("SCALEBOOK_PROFILE").is_some())
}

/// Records the time until it is dropped.
pub struct Timer(Option<(Section, Instant)>);

impl Timer {
    pub fn new(section: Section) -> Self {
        Timer(enabled().then(|| (section, Instant::now())))
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some((section, start)) = self.0 {
            TOTALS[section as usize]
                .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }
}

/// Seconds per section so far, with labels; `None` when profiling is off.
pub fn totals() -> Option<Vec<(&'static str, f64)>> {
    enabled().then(|| {
        SECTIONS
            .iter()
            .map(|(s, label)| {
                (
                    *label,
                    TOTALS[*s as usize].load(Ordering::Relaxed) as f64 * 1e-9,
                )
            })
            .collect()
    })
}

/// Zero the table (after warm-up steps).
pub fn reset() {
    for t in &TOTALS {
        t.store(0, Ordering::Relaxed);
    }
}
