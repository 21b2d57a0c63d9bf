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
    /// How initialisation, learning rates and the attention and output scales depend on the
    /// width. Absent from the identity when standard, so standard runs keep their keys.
    #[serde(default, skip_serializing_if = "Parametrization::is_standard")]
    pub parametrization: Parametrization,
}

/// The parametrisation of a model's width.
///
/// - `Standard`: N(0, 0.02) for every matrix, one learning rate for every tensor, attention
///   scores scaled by 1/√d_head, logits unscaled (GPT-2, nanoGPT).
/// - `Mup`: the maximal-update parametrisation (Yang et al. 2022, "Tensor Programs V", for
///   Adam), relative to `base_width`, with m = d_model / base_width: hidden matrices (QKV,
///   attention output, both MLP matrices) start at N(0, 0.02/√m) and train at lr/m;
///   embeddings, biases and LayerNorm gains keep the standard init and lr; attention scores are
///   scaled by 1/√(d_head·m) (1/√d_head at the base width, ∝ 1/d_head as the width
///   grows at a fixed head count); logits are multiplied by 1/m (the
///   output head, or the tied embedding, trains at the full lr). At the base width every
///   multiplier is 1, so a µP model of the base width trains exactly as the standard one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Parametrization {
    #[default]
    Standard,
    Mup {
        base_width: u64,
    },
}

impl Parametrization {
    pub fn is_standard(&self) -> bool {
        matches!(self, Parametrization::Standard)
    }
}

/// The per-tensor multipliers a [`Parametrization`] gives one shape: exactly 1.0 (and the
/// standard attention scale) under the standard parametrisation, so its arithmetic is
/// unchanged bit for bit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Multipliers {
    /// Initial standard deviation of the hidden matrices, relative to 0.02.
    pub hidden_init: f64,
    /// Learning rate of the hidden matrices, relative to the run's.
    pub hidden_lr: f64,
    /// Attention scores' scale relative to 1/√d_head.
    pub attention: f64,
    /// Factor on the logits.
    pub logits: f64,
}

impl Multipliers {
    pub const STANDARD: Multipliers = Multipliers {
        hidden_init: 1.0,
        hidden_lr: 1.0,
        attention: 1.0,
        logits: 1.0,
    };

    pub fn of(cfg: &GptConfig) -> Multipliers {
        match cfg.parametrization {
            Parametrization::Standard => Multipliers::STANDARD,
            Parametrization::Mup { base_width } => {
                let m = cfg.d_model as f64 / base_width.max(1) as f64;
                Multipliers {
                    hidden_init: 1.0 / m.sqrt(),
                    hidden_lr: 1.0 / m,
                    attention: 1.0 / m.sqrt(),
                    logits: 1.0 / m,
                }
            }
        }
    }
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
