//! Fused CPU ops with their own backward pass (issue 7's first lever).
//!
//! GELU (tanh approximation, Hendrycks & Gimpel 2016): candle computes the forward through
//! scalar libm `tanhf` and the backward as a dozen full-size tensor ops (`powf`, `tanh`,
//! products, sums), each allocating a tensor as large as the MLP's hidden activations — about
//! a quarter of a training step at 4/256/4 (`perf record` of `scalebook bench train`). Here the
//! forward is one pass and the backward one pass, both branch-free so they vectorise, split
//! over the rayon pool. The mathematics is unchanged: tanh is computed as
//! sign(u)·(1 − 2/(e^{2|u|} + 1)) with a range-reduced polynomial e^x accurate to ~1 ulp in
//! f32 (a test checks forward and gradient against candle's unfused op).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// √(2/π), as candle and PyTorch use it.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const CUBIC: f32 = 0.044_715;
/// Elements per parallel task (small tensors stay on one thread).
const CHUNK: usize = 16 * 1024;

/// e^x in f32 for |x| ≤ 88: Cody–Waite reduction by ln 2, degree-7 Taylor polynomial.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + MAGIC;
    let k = shifted - MAGIC;
    let k_int = shifted.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let r2 = r * r;
    let p = (1.0 + r)
        + r2 * ((0.5 + r * (1.0 / 6.0))
            + r2 * ((1.0 / 24.0 + r * (1.0 / 120.0)) + r2 * (1.0 / 720.0 + r * (1.0 / 5040.0))));
    p * f32::from_bits((k_int.wrapping_add(127) as u32) << 23)
}

/// tanh u = sign(u)·(1 − 2/(e^{2|u|} + 1)).
#[inline(always)]
fn tanh_f32(u: f32) -> f32 {
    let a = u.abs();
    let t = 1.0 - 2.0 / (exp_f32(2.0 * a) + 1.0);
    if u < 0.0 { -t } else { t }
}

#[inline(always)]
fn gelu_f32(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * x * (1.0 + CUBIC * x * x);
    0.5 * x * (1.0 + tanh_f32(u))
}

/// d gelu / dx = ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²), t = tanh u.
#[inline(always)]
fn gelu_grad_f32(x: f32) -> f32 {
    let x2 = x * x;
    let u = SQRT_2_OVER_PI * x * (1.0 + CUBIC * x2);
    let t = tanh_f32(u);
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x2)
}

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: only f32 tensors are supported");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: the input must be contiguous"),
    }
}

/// Fused GELU (tanh approximation) with a fused backward.
pub struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "scalebook-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(storage, layout, self.name())?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(out, inp)| {
                for (o, &v) in out.iter_mut().zip(inp) {
                    *o = gelu_f32(v);
                }
            });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let arg = arg.contiguous()?;
        let grad = grad_res.contiguous()?;
        Ok(Some(arg.apply_op2_no_bwd(&grad, &GeluBackward)?))
    }
}

/// grad · gelu'(x) in one pass.
struct GeluBackward;

impl CustomOp2 for GeluBackward {
    fn name(&self) -> &'static str {
        "scalebook-gelu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, self.name())?;
        let g = contiguous(s2, l2, self.name())?;
        if x.len() != g.len() {
            candle_core::bail!("{}: shapes differ", self.name());
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
            .for_each(|(o, (xs, gs))| {
                for ((o, &v), &gv) in o.iter_mut().zip(xs).zip(gs) {
                    *o = gv * gelu_grad_f32(v);
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Causal softmax over the last dimension of (…, T, T) attention scores: row t keeps
/// columns 0..=t (the rest get probability 0, as adding −∞ then exponentiating gives),
/// in one pass instead of candle's mask add + max + sub + exp + sum + div, each allocating a
/// B·H·T·T tensor — the largest activations of the model.
pub struct CausalSoftmax;

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "scalebook-causal-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(storage, layout, self.name())?;
        let dims = layout.shape().dims();
        let t = *dims.last().unwrap_or(&0);
        if dims.len() < 2 || dims[dims.len() - 2] != t || t == 0 {
            candle_core::bail!("{}: expected (…, T, T) scores, got {dims:?}", self.name());
        }
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(t * t)
            .zip(x.par_chunks(t * t))
            .for_each(|(out, inp)| {
                for (row, (o, v)) in out.chunks_mut(t).zip(inp.chunks(t)).enumerate() {
                    let valid = &v[..=row];
                    let m = valid.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0f32;
                    for (oj, &vj) in o[..=row].iter_mut().zip(valid) {
                        let e = exp_f32(vj - m);
                        *oj = e;
                        sum += e;
                    }
                    let inv = 1.0 / sum;
                    for oj in &mut o[..=row] {
                        *oj *= inv;
                    }
                }
            });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let y = res.contiguous()?;
        let grad = grad_res.contiguous()?;
        Ok(Some(y.apply_op2_no_bwd(&grad, &SoftmaxBackward)?))
    }
}

/// dx = y ⊙ (g − Σ_j g_j y_j) per row (masked entries have y = 0 and get 0).
struct SoftmaxBackward;

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "scalebook-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = contiguous(s1, l1, self.name())?;
        let g = contiguous(s2, l2, self.name())?;
        let t = *l1.shape().dims().last().unwrap_or(&0);
        if y.len() != g.len() || t == 0 {
            candle_core::bail!("{}: shapes differ", self.name());
        }
        let mut out = vec![0f32; y.len()];
        // Whole rows per task.
        let per_task = (CHUNK / t).max(1) * t;
        out.par_chunks_mut(per_task)
            .zip(y.par_chunks(per_task).zip(g.par_chunks(per_task)))
            .for_each(|(o, (ys, gs))| {
                for ((o, yr), gr) in o.chunks_mut(t).zip(ys.chunks(t)).zip(gs.chunks(t)) {
                    let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
                    for ((oj, &yj), &gj) in o.iter_mut().zip(yr).zip(gr) {
                        *oj = yj * (gj - dot);
                    }
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// The additive causal mask (T, T): 0 on and below the diagonal, −∞ above (what the fused
/// softmax applies implicitly, and what the composed path adds).
pub fn causal_mask(t: usize, device: &candle_core::Device) -> Result<Tensor> {
    let mask: Vec<f32> = (0..t * t)
        .map(|i| {
            if i % t > i / t {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_vec(mask, (t, t), device)
}

/// Causal softmax of (…, T, T) scores: fused on the CPU for f32, mask + candle's composed
/// softmax otherwise.
pub fn causal_softmax(scores: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if scores.dtype() == DType::F32 && scores.device().is_cpu() {
        scores.contiguous()?.apply_op1(CausalSoftmax)
    } else {
        candle_nn::ops::softmax(&scores.broadcast_add(mask)?, candle_core::D::Minus1)
    }
}

/// LayerNorm's normalisation x̂ = (x − μ)/√(σ² + ε) over the last dimension in one pass
/// (candle's composition is mean, sub, sqr, mean, add, sqrt, div); the gain and bias stay
/// candle ops so their gradients flow as usual.
pub struct Normalize {
    pub eps: f32,
}

impl CustomOp1 for Normalize {
    fn name(&self) -> &'static str {
        "scalebook-normalize"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(storage, layout, self.name())?;
        let d = *layout.shape().dims().last().unwrap_or(&0);
        if d == 0 {
            candle_core::bail!("{}: empty last dimension", self.name());
        }
        let per_task = (CHUNK / d).max(1) * d;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(per_task)
            .zip(x.par_chunks(per_task))
            .for_each(|(out, inp)| {
                for (o, v) in out.chunks_mut(d).zip(inp.chunks(d)) {
                    let mean = v.iter().sum::<f32>() / d as f32;
                    let var = v.iter().map(|a| (a - mean) * (a - mean)).sum::<f32>() / d as f32;
                    let inv = 1.0 / (var + self.eps).sqrt();
                    for (oj, &vj) in o.iter_mut().zip(v) {
                        *oj = (vj - mean) * inv;
                    }
                }
            });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        // dx = (g − mean(g) − x̂·mean(g·x̂)) / σ, with σ recomputed from x.
        let x = arg.contiguous()?;
        let xhat = res.contiguous()?;
        let g = grad_res.contiguous()?;
        let packed = Tensor::cat(&[&xhat, &g], candle_core::D::Minus1)?;
        Ok(Some(x.apply_op2_no_bwd(
            &packed,
            &NormalizeBackward { eps: self.eps },
        )?))
    }
}

/// The backward of [`Normalize`]: inputs x and [x̂ | g] concatenated on the last dimension.
struct NormalizeBackward {
    eps: f32,
}

impl CustomOp2 for NormalizeBackward {
    fn name(&self) -> &'static str {
        "scalebook-normalize-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, self.name())?;
        let packed = contiguous(s2, l2, self.name())?;
        let d = *l1.shape().dims().last().unwrap_or(&0);
        if d == 0 || packed.len() != 2 * x.len() {
            candle_core::bail!("{}: shapes differ", self.name());
        }
        let rows_per_task = (CHUNK / d).max(1);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(rows_per_task * d)
            .zip(
                x.par_chunks(rows_per_task * d)
                    .zip(packed.par_chunks(rows_per_task * 2 * d)),
            )
            .for_each(|(o, (xs, ps))| {
                for ((o, v), p) in o.chunks_mut(d).zip(xs.chunks(d)).zip(ps.chunks(2 * d)) {
                    let (xhat, g) = p.split_at(d);
                    let mean = v.iter().sum::<f32>() / d as f32;
                    let var = v.iter().map(|a| (a - mean) * (a - mean)).sum::<f32>() / d as f32;
                    let inv = 1.0 / (var + self.eps).sqrt();
                    let mean_g = g.iter().sum::<f32>() / d as f32;
                    let mean_gx = g.iter().zip(xhat).map(|(a, b)| a * b).sum::<f32>() / d as f32;
                    for ((oj, &gj), &xj) in o.iter_mut().zip(g).zip(xhat) {
                        *oj = (gj - mean_g - xj * mean_gx) * inv;
                    }
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// LayerNorm's normalisation: fused on the CPU for f32, candle's composition otherwise.
pub fn normalize(x: &Tensor, eps: f64) -> Result<Tensor> {
    if x.dtype() == DType::F32 && x.device().is_cpu() {
        x.contiguous()?.apply_op1(Normalize { eps: eps as f32 })
    } else {
        normalize_composed(x, eps)
    }
}

/// The same normalisation composed from candle ops (mean, sub, sqr, mean, add, sqrt, div).
pub fn normalize_composed(x: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(candle_core::D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
    centred.broadcast_div(&(var + eps)?.sqrt()?)
}

/// GELU (tanh approximation): fused for contiguous f32 on the CPU, candle's op otherwise.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if x.dtype() == DType::F32 && x.device().is_cpu() {
        x.contiguous()?.apply_op1(Gelu)
    } else {
        x.gelu()
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn exp_and_tanh_match_libm() {
        let mut worst: f32 = 0.0;
        for i in -8000..=8000 {
            let x = i as f32 * 0.01;
            worst = worst.max((exp_f32(x) / x.exp() - 1.0).abs());
        }
        assert!(worst < 4e-7, "exp off by {worst:e}");
        let mut worst: f32 = 0.0;
        for i in -2000..=2000 {
            let u = i as f32 * 0.005;
            worst = worst.max((tanh_f32(u) - u.tanh()).abs());
        }
        assert!(worst < 3e-7, "tanh off by {worst:e}");
    }

    /// Causal softmax and its gradient agree with mask + candle's composed softmax.
    #[test]
    fn causal_softmax_matches_the_composed_one() {
        let device = Device::Cpu;
        let t = 37;
        let scores =
            Var::from_tensor(&(Tensor::randn(0f32, 3f32, (2, 3, t, t), &device).unwrap())).unwrap();
        let mask = causal_mask(t, &device).unwrap();
        let weights = Tensor::randn(0f32, 1f32, (2, 3, t, t), &device).unwrap();
        let fused = CausalSoftmax;
        let a = scores.as_tensor().apply_op1(fused).unwrap();
        let b = candle_nn::ops::softmax(
            &scores.as_tensor().broadcast_add(&mask).unwrap(),
            candle_core::D::Minus1,
        )
        .unwrap();
        let diff = (&a - &b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        let ga = (&a * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gb = (&b * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let d = (ga.get(&scores).unwrap() - gb.get(&scores).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
    }

    /// The fused normalisation and its gradient agree with candle's composition.
    #[test]
    fn normalize_matches_the_composed_one() {
        let device = Device::Cpu;
        let x =
            Var::from_tensor(&Tensor::randn(0.5f32, 2f32, (3, 5, 48), &device).unwrap()).unwrap();
        let weights = Tensor::randn(0f32, 1f32, (3, 5, 48), &device).unwrap();
        let a = x.as_tensor().apply_op1(Normalize { eps: 1e-5 }).unwrap();
        let mean = x.as_tensor().mean_keepdim(candle_core::D::Minus1).unwrap();
        let centred = x.as_tensor().broadcast_sub(&mean).unwrap();
        let var = centred
            .sqr()
            .unwrap()
            .mean_keepdim(candle_core::D::Minus1)
            .unwrap();
        let b = centred
            .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
            .unwrap();
        let diff = (&a - &b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 2e-6);
        let ga = (&a * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gb = (&b * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let d = (ga.get(&x).unwrap() - gb.get(&x).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
    }

    /// Forward and gradient agree with candle's unfused GELU (tolerance 1e-6 absolute on
    /// values of order 1).
    #[test]
    fn forward_and_gradient_match_candles_gelu() {
        let device = Device::Cpu;
        let values: Vec<f32> = (0..50_000).map(|i| (i as f32 - 25_000.0) * 3e-4).collect();
        let x = Var::from_vec(values, (100, 500), &device).unwrap();
        let weights = Tensor::rand(0f32, 1f32, (100, 500), &device).unwrap();
        let fused = gelu(x.as_tensor()).unwrap();
        let plain = x.as_tensor().gelu().unwrap();
        let diff = (&fused - &plain).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        let g_fused = (&fused * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g_plain = (&plain * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (a, b) = (g_fused.get(&x).unwrap(), g_plain.get(&x).unwrap());
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 2e-6);
    }
}
