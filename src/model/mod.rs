//! The GPT model: its shape ([`GptConfig`]), exact parameter and FLOP accounting
//! ([`accounting`]), the CPU training engine ([`cpu`]), the candle reference implementation
//! it is tested against ([`gpt`]) and the seeded initialisation both share ([`init`]).

pub mod accounting;
pub mod cpu;
pub mod gpt;
pub mod init;

use serde::{Deserialize, Serialize};

pub use accounting::{ParamCounts, param_counts, train_flops_per_token};

/// Everything that fixes a GPT's architecture: identical to the model of
/// `../shared/bench/gpt_torch.py` (token + learned position embeddings, pre-LayerNorm blocks,
/// fused QKV, 4× GELU MLP, final LayerNorm, untied head without bias unless tied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GptConfig {
    pub layers: u64,
    pub d_model: u64,
    pub heads: u64,
    pub context: u64,
    pub vocab: u64,
    pub tie_embeddings: bool,
}

impl GptConfig {
    /// Readable short form used in run names: `l4-d128`.
    pub fn short_name(&self) -> String {
        format!("l{}-d{}", self.layers, self.d_model)
    }

    /// The shape in words: `2 layers × d_model 96 × 4 heads`.
    pub fn shape_words(&self) -> String {
        format!(
            "{} layers × d_model {} × {} heads",
            self.layers, self.d_model, self.heads
        )
    }
}
