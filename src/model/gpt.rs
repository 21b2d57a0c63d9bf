//! The GPT of `../shared/bench/gpt_torch.py` in candle: token + learned position embeddings,
//! pre-LayerNorm blocks [LN → causal multi-head attention (fused QKV with bias, output
//! projection with bias) → residual; LN → Linear(d, 4d) → GELU(tanh) → Linear(4d, d) →
//! residual], final LayerNorm, untied head without bias (or tied to the token embedding).
//! Init N(0, 0.02) for every matrix, zero biases (Radford et al. 2019; nanoGPT); under µP
//! the width multipliers of [`super::Multipliers`] scale the hidden matrices' init, the
//! attention scores and the logits (the learning rates are the optimizer's).
//!
//! This is the *reference* model: the mathematics written plainly in candle ops, with candle's
//! autograd for the backward. Training runs on the CPU engine ([`super::cpu`]), which is
//! tested against it (same weights, gradients, and loss curve). Every op here has a backward
//! pass: candle-nn's fused `LayerNorm`, `softmax_last_dim`, `rms_norm` and `flash_attn`
//! silently cut the graph (DESIGN.md, stack notes), so layer norm and softmax are composed
//! from basic ops, and a test checks that every parameter gets a gradient.

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::{GptConfig, Multipliers};

/// N(0, `stdev_mult` · 0.02).
fn matrix_init(stdev_mult: f64) -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: 0.02 * stdev_mult,
    }
}
const LN_EPS: f64 = 1e-5;

/// y = x·Wᵀ + b over the last dimension (W: out × in, as torch.nn.Linear).
struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    fn new(vb: VarBuilder, inputs: usize, outputs: usize, bias: bool, init: f64) -> Result<Self> {
        let weight = vb.get_with_hints((outputs, inputs), "weight", matrix_init(init))?;
        let bias = if bias {
            Some(vb.get_with_hints(outputs, "bias", Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // (..., in) → (N, in) so the product is one 2-D GEMM, then back.
        let dims = x.dims().to_vec();
        let inputs = dims[dims.len() - 1];
        let rows = x.elem_count() / inputs;
        let y = x.reshape((rows, inputs))?.matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out = dims;
        *out.last_mut().expect("rank ≥ 1") = self.weight.dim(0)?;
        y.reshape(out)
    }
}

/// LayerNorm composed from differentiable ops (mean, variance, scale, shift).
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    fn new(vb: VarBuilder, d: usize) -> Result<Self> {
        Ok(LayerNorm {
            weight: vb.get_with_hints(d, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(d, "bias", Init::Const(0.0))?,
        })
    }
}

impl LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        centred
            .broadcast_div(&(var + LN_EPS)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// Causal multi-head self-attention with a fused QKV projection.
struct Attention {
    qkv: Linear,
    proj: Linear,
    heads: usize,
    /// The parametrisation's factor on 1/√d_head.
    scale_mult: f64,
}

impl Attention {
    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let hd = c / self.heads;
        let qkv = self.qkv.forward(x)?; // (B, T, 3C)
        let split = |i: usize| -> Result<Tensor> {
            qkv.narrow(2, i * c, c)?
                .reshape((b, t, self.heads, hd))?
                .transpose(1, 2)? // (B, H, T, hd)
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scale = 1.0 / (hd as f64).sqrt() * self.scale_mult;
        let att = (q.matmul(&k.t()?)? * scale)?; // (B, H, T, T)
        let att = candle_nn::ops::softmax(&att.broadcast_add(mask)?, D::Minus1)?;
        let y = att.matmul(&v)?; // (B, H, T, hd)
        let y = y.transpose(1, 2)?.contiguous()?.reshape((b, t, c))?;
        self.proj.forward(&y)
    }
}

struct Block {
    ln1: LayerNorm,
    attn: Attention,
    ln2: LayerNorm,
    fc: Linear,
    fc2: Linear,
}

impl Block {
    fn new(cfg: &GptConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d_model as usize;
        let mult = Multipliers::of(cfg);
        let init = mult.hidden_init;
        Ok(Block {
            ln1: LayerNorm::new(vb.pp("ln1"), d)?,
            attn: Attention {
                qkv: Linear::new(vb.pp("qkv"), d, 3 * d, true, init)?,
                proj: Linear::new(vb.pp("proj"), d, d, true, init)?,
                heads: cfg.heads as usize,
                scale_mult: mult.attention,
            },
            ln2: LayerNorm::new(vb.pp("ln2"), d)?,
            fc: Linear::new(vb.pp("fc"), d, 4 * d, true, init)?,
            fc2: Linear::new(vb.pp("fc2"), 4 * d, d, true, init)?,
        })
    }

    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln1.forward(x)?, mask)?)?;
        let h = self.fc.forward(&self.ln2.forward(&x)?)?;
        // GELU, tanh approximation.
        let h = h.gelu()?;
        &x + self.fc2.forward(&h)?
    }
}

/// The model.
pub struct Gpt {
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    /// `None` when tied: logits use `wte`.
    head: Option<Linear>,
    /// (T, T): 0 on and below the diagonal, −∞ above.
    mask: Tensor,
    cfg: GptConfig,
}

impl Gpt {
    pub fn new(cfg: &GptConfig, vb: VarBuilder) -> Result<Self> {
        let (d, v, t) = (
            cfg.d_model as usize,
            cfg.vocab as usize,
            cfg.context as usize,
        );
        let wte = vb
            .pp("wte")
            .get_with_hints((v, d), "weight", matrix_init(1.0))?;
        let wpe = vb
            .pp("wpe")
            .get_with_hints((t, d), "weight", matrix_init(1.0))?;
        let blocks = (0..cfg.layers as usize)
            .map(|i| Block::new(cfg, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = LayerNorm::new(vb.pp("ln_f"), d)?;
        let head = if cfg.tie_embeddings {
            None
        } else {
            Some(Linear::new(vb.pp("head"), d, v, false, 1.0)?)
        };
        // (T, T): 0 on and below the diagonal, −∞ above.
        let mask: Vec<f32> = (0..t * t)
            .map(|i| {
                if i % t > i / t {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), vb.device())?.to_dtype(vb.dtype())?;
        Ok(Gpt {
            wte,
            wpe,
            blocks,
            ln_f,
            head,
            mask,
            cfg: *cfg,
        })
    }

    /// Logits (B, T, V) for token ids (B, T), T ≤ context.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let d = self.cfg.d_model as usize;
        let tok = self
            .wte
            .embedding(&ids.flatten_all()?)?
            .reshape((b, t, d))?; // (B, T, C)
        let pos = self.wpe.narrow(0, 0, t)?; // (T, C)
        let mut x = tok.broadcast_add(&pos)?;
        let mask = self.mask.narrow(0, 0, t)?.narrow(1, 0, t)?.contiguous()?;
        for block in &self.blocks {
            x = block.forward(&x, &mask)?;
        }
        let x = self.ln_f.forward(&x)?;
        let logits = match &self.head {
            Some(head) => head.forward(&x)?,
            None => Linear {
                weight: self.wte.clone(),
                bias: None,
            }
            .forward(&x)?,
        };
        let mult = Multipliers::of(&self.cfg).logits;
        if mult == 1.0 {
            Ok(logits)
        } else {
            logits * mult
        }
    }

    /// Mean next-token cross-entropy (nats/token) of `targets` (B·T) given `ids` (B, T).
    pub fn loss(&self, ids: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let logits = self.forward(ids)?;
        let v = self.cfg.vocab as usize;
        let logits = logits.reshape((logits.elem_count() / v, v))?;
        candle_nn::loss::cross_entropy(&logits, targets)
    }
}

/// The dtype every model trains in.
pub const DTYPE: DType = DType::F32;

/// The model built with seeded initial values, and its variables: the reference the CPU
/// engine's tests compare against.
#[cfg(test)]
pub(crate) fn seeded(cfg: &GptConfig, seed: u64) -> (Gpt, candle_nn::VarMap) {
    let varmap = candle_nn::VarMap::new();
    let backend = crate::model::init::SeededInit::new(varmap.clone(), seed);
    let vb = VarBuilder::from_backend(Box::new(backend), DTYPE, candle_core::Device::Cpu);
    (Gpt::new(cfg, vb).unwrap(), varmap)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::model::param_counts;

    /// Token ids as a (B, T) u32 tensor.
    fn ids_tensor(ids: &[u32], b: usize, t: usize, device: &Device) -> Result<Tensor> {
        Tensor::from_slice(ids, (b, t), device)
    }

    fn cfg(tie: bool) -> GptConfig {
        GptConfig {
            layers: 2,
            d_model: 32,
            heads: 4,
            context: 16,
            vocab: 50,
            tie_embeddings: tie,
            parametrization: Default::default(),
        }
    }

    #[test]
    fn built_parameter_count_equals_the_plan() {
        for tie in [false, true] {
            let c = cfg(tie);
            let (_, varmap) = seeded(&c, 1);
            let built: usize = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
            assert_eq!(built as u64, param_counts(&c).total, "tie = {tie}");
        }
    }

    #[test]
    fn every_parameter_gets_a_gradient() {
        for tie in [false, true] {
            let (model, varmap) = seeded(&cfg(tie), 1);
            let ids: Vec<u32> = (0..2 * 16).map(|i| (i * 7 % 50) as u32).collect();
            let targets: Vec<u32> = (0..2 * 16).map(|i| (i * 3 % 50) as u32).collect();
            let x = ids_tensor(&ids, 2, 16, &Device::Cpu).unwrap();
            let y = Tensor::from_slice(&targets, 32, &Device::Cpu).unwrap();
            let loss = model.loss(&x, &y).unwrap();
            let grads = loss.backward().unwrap();
            let data = varmap.data().lock().unwrap();
            for (name, var) in data.iter() {
                let g = grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("{name} has no gradient (graph cut)"));
                let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
                assert!(norm > 0.0 && norm.is_finite(), "{name}: |g|² = {norm}");
            }
        }
    }

    #[test]
    fn initial_loss_is_near_uniform_and_init_is_seeded() {
        let (model, _) = seeded(&cfg(false), 1);
        let ids: Vec<u32> = (0..16).map(|i| i as u32).collect();
        let x = ids_tensor(&ids, 1, 16, &Device::Cpu).unwrap();
        let y = Tensor::from_slice(&ids, 16, &Device::Cpu).unwrap();
        let loss: f32 = model.loss(&x, &y).unwrap().to_scalar().unwrap();
        // Small init ⇒ near-uniform predictions ⇒ loss ≈ ln V.
        assert!((loss - (50f32).ln()).abs() < 0.1, "{loss}");
        let (again, _) = seeded(&cfg(false), 1);
        let (other, _) = seeded(&cfg(false), 2);
        let same: f32 = again.loss(&x, &y).unwrap().to_scalar().unwrap();
        let diff: f32 = other.loss(&x, &y).unwrap().to_scalar().unwrap();
        assert_eq!(loss.to_bits(), same.to_bits());
        assert_ne!(loss.to_bits(), diff.to_bits());
    }

    #[test]
    fn attention_is_causal() {
        // Changing a later token must not change earlier logits.
        let (model, _) = seeded(&cfg(false), 3);
        let a: Vec<u32> = (0..16).map(|i| i as u32).collect();
        let mut b = a.clone();
        b[10] = 42;
        let la = model
            .forward(&ids_tensor(&a, 1, 16, &Device::Cpu).unwrap())
            .unwrap();
        let lb = model
            .forward(&ids_tensor(&b, 1, 16, &Device::Cpu).unwrap())
            .unwrap();
        let diff = (la - lb).unwrap().abs().unwrap();
        let before: f32 = diff
            .narrow(1, 0, 10)
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        let after: f32 = diff
            .narrow(1, 10, 6)
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(before, 0.0);
        assert!(after > 0.0);
    }
}
