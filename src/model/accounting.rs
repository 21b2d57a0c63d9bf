//! Exact parameter counts and training FLOPs of the GPT in [`super::GptConfig`].
//!
//! Parameter counts follow the module list of `../shared/bench/gpt_torch.py` term by term.
//! FLOP counts follow Hoffmann et al. 2022 ("Training Compute-Optimal Large Language
//! Models"), Appendix F, and the 6·N·D approximation of Kaplan et al. 2020 §2.1.

use super::GptConfig;

/// Parameter counts in the three conventions the scaling literature uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ParamCounts {
    /// Every trainable parameter (Chinchilla's N).
    pub total: u64,
    /// Token and position embeddings (shared with the head when tied).
    pub embedding: u64,
    /// total − embedding (Kaplan's N; the untied head counts here).
    pub non_embedding: u64,
}

/// Count parameters exactly.
///
/// Per block (d = d_model): ln1 2d; qkv d·3d + 3d; proj d·d + d; ln2 2d; fc d·4d + 4d;
/// fc2 4d·d + d — in all 12d² + 13d. Plus wte V·d, wpe T·d, ln_f 2d, and the head d·V
/// without bias when untied.
pub fn param_counts(cfg: &GptConfig) -> ParamCounts {
    let d = cfg.d_model;
    let per_block = 12 * d * d + 13 * d;
    let embedding = cfg.vocab * d + cfg.context * d;
    let head = if cfg.tie_embeddings { 0 } else { d * cfg.vocab };
    let non_embedding = cfg.layers * per_block + 2 * d + head;
    ParamCounts {
        total: embedding + non_embedding,
        embedding,
        non_embedding,
    }
}

/// About how many bytes training `cfg` at `batch` sequences per step holds (f32): the
/// weights, their gradients and AdamW's two moments (4 × N), and the activations kept for the
/// backward pass — per token and layer about 16·d values plus one row of attention weights
/// per head, and the output logits twice. An estimate to refuse shapes that cannot fit, not
/// a measurement (runs record their measured peak).
pub fn training_bytes(cfg: &GptConfig, batch: u64) -> f64 {
    let n = param_counts(cfg).total as f64;
    let (d, t, v) = (cfg.d_model as f64, cfg.context as f64, cfg.vocab as f64);
    let per_token = cfg.layers as f64 * (16.0 * d + cfg.heads as f64 * t) + 2.0 * v;
    4.0 * (4.0 * n + batch as f64 * t * per_token)
}

/// Exact training FLOPs per token (forward + backward), attention and output layer included.
///
/// Forward, per token, after Hoffmann et al. 2022 Appendix F (one multiply-add = 2 FLOPs):
/// - QKV projection 2·3d², attention output projection 2·d², MLP 2·(2·4d²), per layer;
/// - attention logits Q·Kᵀ 2·T·d and the value reduction 2·T·d, per layer (the full T×T
///   product, as computed with a causal mask);
/// - softmax 3·H·T per layer;
/// - output logits 2·d·V.
///
/// The embedding lookup is a gather, not arithmetic, so unlike Appendix F's one-hot matmul
/// convention it is not counted; layer norms, biases and GELU are below 1 % and left out as
/// in Appendix F. Backward costs twice the forward (Appendix F; Kaplan et al. 2020 §2.1), so
/// training is 3× forward.
pub fn train_flops_per_token(cfg: &GptConfig) -> f64 {
    let d = cfg.d_model as f64;
    let t = cfg.context as f64;
    let per_layer = 2.0 * 3.0 * d * d   // fused QKV
        + 2.0 * d * d                   // output projection
        + 2.0 * 2.0 * 4.0 * d * d       // MLP up and down
        + 2.0 * t * d                   // logits Q·Kᵀ
        + 2.0 * t * d                   // softmax(·)·V
        + 3.0 * cfg.heads as f64 * t; // softmax
    let forward = cfg.layers as f64 * per_layer + 2.0 * d * cfg.vocab as f64;
    3.0 * forward
}

/// Kaplan et al. 2020's approximation C ≈ 6·N·D with N the non-embedding parameters.
pub fn flops_6nd(non_embedding_params: u64, tokens: u64) -> f64 {
    6.0 * non_embedding_params as f64 * tokens as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(
        layers: u64,
        d_model: u64,
        heads: u64,
        context: u64,
        vocab: u64,
        tie: bool,
    ) -> GptConfig {
        GptConfig {
            layers,
            d_model,
            heads,
            context,
            vocab,
            tie_embeddings: tie,
            parametrization: Default::default(),
        }
    }

    #[test]
    fn gpt2_small_has_124_439_808_parameters() {
        // GPT-2 small: 12 layers, d 768, 12 heads, context 1024, vocab 50257, tied head.
        let counts = param_counts(&cfg(12, 768, 12, 1024, 50257, true));
        assert_eq!(counts.total, 124_439_808);
        assert_eq!(counts.embedding, 50257 * 768 + 1024 * 768);
        assert_eq!(counts.non_embedding, 124_439_808 - 39_383_808);
    }

    #[test]
    fn bench_configs_match_pytorch_counts() {
        // S1 of ../shared/bench: `count(GPT(2, 128, 4, ctx=256))` in gpt_torch.py prints
        // (495104, 429568) — measured with PyTorch 2.15 — i.e. (total, total − wte − wpe).
        let s1 = param_counts(&cfg(2, 128, 4, 256, 256, false));
        assert_eq!(s1.embedding, 256 * 128 + 256 * 128);
        assert_eq!(
            s1.non_embedding,
            2 * (12 * 128 * 128 + 13 * 128) + 2 * 128 + 128 * 256
        );
        assert_eq!(s1.total, 495_104);
    }

    #[test]
    fn flops_are_close_to_6n_plus_attention() {
        // For a model whose embeddings are small, 6N + 12·L·T·d (PaLM appendix B, nanoGPT)
        // and the exact count agree within the softmax and the head-vs-embedding terms.
        let c = cfg(8, 512, 8, 256, 256, false);
        let n = param_counts(&c).non_embedding as f64;
        let approx = 6.0 * n + 12.0 * 8.0 * 256.0 * 512.0;
        let exact = train_flops_per_token(&c);
        assert!((exact / approx - 1.0).abs() < 0.01, "{exact} vs {approx}");
        assert!(flops_6nd(1000, 10) == 60_000.0);
    }
}
