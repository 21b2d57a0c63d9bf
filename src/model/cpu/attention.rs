//! Causal multi-head self-attention, forward and backward (Vaswani et al. 2017:
//! softmax(QKᵀ/√d_h + mask)·V), read straight out of the fused QKV activations.
//!
//! Each batch element is one parallel task; inside it every head's products are strided
//! views into the (T, 3C) QKV rows, so no head split or merge copy is made (one transpose
//! per head, below), and the result lands directly in its head's columns of the (T, C)
//! output. Rows go in blocks
//! of [`BLOCK`]: row block [r₀, r₁) only needs key columns [0, r₁), which skips ~3/8 of the
//! score products at T = 256 and never exponentiates a masked entry. The probabilities P
//! are kept (masked entries stored as 0) for the backward:
//! dP = dY·Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)), dQ = dS·K/√d_h, dK = dSᵀ·Q/√d_h, dV = Pᵀ·dY.
//!
//! The transposes: the two products with a transposed head as their right
//! operand (QKᵀ forward, dY·Vᵀ backward) read it from a per-head (d_h, T) transposed copy.
//! Handed the strided (T, d_h) rows instead, `gemm` gathers them into its packed layout on
//! every call, once per row block (2.5 T rows per head at T = 256): a profile of attention
//! alone at S4 put 24 % of its time in that packing, and those products ran at about half
//! the speed of P·V. One blocked transpose per head replaces it.

use rayon::prelude::*;

use super::kernels;
use super::matmul::{Threads, View, ViewMut, matmul};
use super::profile::{self, Section};

/// Query rows per block.
const BLOCK: usize = 64;

fn blocks(t: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..t.div_ceil(BLOCK)).map(move |i| (i * BLOCK, ((i + 1) * BLOCK).min(t)))
}

/// dst (cols × rows, row-major) ← the transpose of the `rows` × `cols` matrix whose row i
/// starts at src[i · stride].
fn transpose(dst: &mut [f32], src: &[f32], rows: usize, cols: usize, stride: usize) {
    assert!(dst.len() >= rows * cols && (rows == 0 || src.len() >= (rows - 1) * stride + cols));
    #[cfg(target_arch = "x86_64")]
    if rows.is_multiple_of(16)
        && cols.is_multiple_of(16)
        && crate::isa::detect().kind() == crate::isa::Kind::Avx512
    {
        for i in (0..rows).step_by(16) {
            for j in (0..cols).step_by(16) {
                // SAFETY: the CPU has AVX-512 (checked above); the tile's 16 source rows
                // [i, i + 16) × [j, j + 16) and 16 destination rows [j, j + 16) × [i, i + 16)
                // lie inside the slices by the assertion at the top.
                unsafe {
                    transpose16(
                        dst.as_mut_ptr().add(j * rows + i),
                        rows,
                        src.as_ptr().add(i * stride + j),
                        stride,
                    );
                }
            }
        }
        return;
    }
    // Any shape, any CPU: contiguous stores of up to 16, loads from rows that stay in L1.
    for i0 in (0..rows).step_by(16) {
        let i1 = (i0 + 16).min(rows);
        let tile = &src[i0 * stride..(i1 - 1) * stride + cols];
        for j in 0..cols {
            let out = &mut dst[j * rows + i0..j * rows + i1];
            for (o, v) in out.iter_mut().zip(tile[j..].iter().step_by(stride)) {
                *o = *v;
            }
        }
    }
}

/// One 16 × 16 tile: 16 row loads, the standard four rounds of in-lane unpacks, in-lane
/// shuffles and two rounds of 128-bit lane shuffles, 16 row stores.
///
/// # Safety
/// The CPU has AVX-512F; src[r · src_stride + 0..16] and dst[r · dst_stride + 0..16] are
/// valid for r in 0..16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(dst: *mut f32, dst_stride: usize, src: *const f32, src_stride: usize) {
    use std::arch::x86_64::*;
    let mut r = [_mm512_setzero_ps(); 16];
    let mut t = [_mm512_setzero_ps(); 16];
    for (k, v) in r.iter_mut().enumerate() {
        // SAFETY: row k of the tile is in bounds (the caller's contract).
        *v = unsafe { _mm512_loadu_ps(src.add(k * src_stride)) };
    }
    for k in 0..8 {
        t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for g in (0..16).step_by(4) {
        r[g] = _mm512_shuffle_ps::<0x44>(t[g], t[g + 2]);
        r[g + 1] = _mm512_shuffle_ps::<0xEE>(t[g], t[g + 2]);
        r[g + 2] = _mm512_shuffle_ps::<0x44>(t[g + 1], t[g + 3]);
        r[g + 3] = _mm512_shuffle_ps::<0xEE>(t[g + 1], t[g + 3]);
    }
    for b in [0, 8] {
        for q in b..b + 4 {
            t[q] = _mm512_shuffle_f32x4::<0x88>(r[q], r[q + 4]);
            t[q + 4] = _mm512_shuffle_f32x4::<0xDD>(r[q], r[q + 4]);
        }
    }
    for q in 0..8 {
        r[q] = _mm512_shuffle_f32x4::<0x88>(t[q], t[q + 8]);
        r[q + 8] = _mm512_shuffle_f32x4::<0xDD>(t[q], t[q + 8]);
    }
    for (k, v) in r.iter().enumerate() {
        // SAFETY: row k of the destination tile is in bounds (the caller's contract).
        unsafe { _mm512_storeu_ps(dst.add(k * dst_stride), *v) };
    }
}

/// Shapes of one attention call.
#[derive(Clone, Copy)]
pub struct Dims {
    pub batch: usize,
    pub t: usize,
    pub c: usize,
    pub heads: usize,
    /// Factor on the scores q·k: [`scale`].
    pub scale: f32,
}

/// The scores' factor for head dimension `hd`: 1/√hd, times the parametrisation's multiplier
/// (exactly 1 under the standard parametrisation, so its bits do not move).
pub fn scale(hd: usize, mult: f64) -> f32 {
    1.0 / (hd as f32).sqrt() * mult as f32
}

/// y (B·T, C) ← attention of `qkv` (B·T, 3C); `att` (B·H·T·T) ← the probabilities.
pub fn forward(y: &mut [f32], att: &mut [f32], qkv: &[f32], dims: Dims) {
    let _timer = profile::Timer::new(Section::AttentionForward);
    let Dims {
        t, c, heads, scale, ..
    } = dims;
    let hd = c / heads;
    y.par_chunks_mut(t * c)
        .zip(att.par_chunks_mut(heads * t * t))
        .zip(qkv.par_chunks(t * 3 * c))
        .for_each(|((y, att), qkv)| {
            let mut kt = vec![0f32; hd * t];
            for (h, p) in att.chunks_mut(t * t).enumerate() {
                transpose(&mut kt, &qkv[c + h * hd..], t, hd, 3 * c);
                for (r0, r1) in blocks(t) {
                    // S = Q[r0..r1]·K[0..r1]ᵀ/√d_h
                    matmul(
                        ViewMut::strided(p, r0 * t, r1 - r0, r1, t),
                        false,
                        View::strided(qkv, r0 * 3 * c + h * hd, r1 - r0, hd, 3 * c, 1),
                        View::strided(&kt, 0, hd, r1, t, 1),
                        scale,
                        Threads::One,
                    );
                    for i in r0..r1 {
                        kernels::causal_softmax_row(&mut p[i * t..(i + 1) * t], i);
                    }
                    // Y[r0..r1] = P[r0..r1, 0..r1]·V[0..r1]
                    matmul(
                        ViewMut::strided(y, r0 * c + h * hd, r1 - r0, hd, c),
                        false,
                        View::strided(p, r0 * t, r1 - r0, r1, t, 1),
                        View::strided(qkv, 2 * c + h * hd, r1, hd, 3 * c, 1),
                        1.0,
                        Threads::One,
                    );
                }
            }
        });
}

/// dqkv (B·T, 3C) ← the gradient of the QKV activations given dy (B·T, C); `scratch` holds
/// B·T·T floats.
pub fn backward(
    dqkv: &mut [f32],
    scratch: &mut [f32],
    dy: &[f32],
    att: &[f32],
    qkv: &[f32],
    dims: Dims,
) {
    let _timer = profile::Timer::new(Section::AttentionBackward);
    let Dims {
        t, c, heads, scale, ..
    } = dims;
    let hd = c / heads;
    dqkv.par_chunks_mut(t * 3 * c)
        .zip(scratch.par_chunks_mut(t * t))
        .zip(dy.par_chunks(t * c).zip(att.par_chunks(heads * t * t)))
        .zip(qkv.par_chunks(t * 3 * c))
        .for_each(|(((dqkv, ds), (dy, att)), qkv)| {
            let mut vt = vec![0f32; hd * t];
            for (h, p) in att.chunks(t * t).enumerate() {
                transpose(&mut vt, &qkv[2 * c + h * hd..], t, hd, 3 * c);
                for (r0, r1) in blocks(t) {
                    // dP[r0..r1, 0..r1] = dY[r0..r1]·V[0..r1]ᵀ
                    matmul(
                        ViewMut::strided(ds, r0 * t, r1 - r0, r1, t),
                        false,
                        View::strided(dy, r0 * c + h * hd, r1 - r0, hd, c, 1),
                        View::strided(&vt, 0, hd, r1, t, 1),
                        1.0,
                        Threads::One,
                    );
                    for i in r0..r1 {
                        kernels::softmax_backward_row(
                            &mut ds[i * t..i * t + r1],
                            &p[i * t..i * t + r1],
                            i,
                        );
                    }
                }
                for (r0, r1) in blocks(t) {
                    // dQ[r0..r1] = dS[r0..r1, 0..r1]·K[0..r1]/√d_h
                    matmul(
                        ViewMut::strided(dqkv, r0 * 3 * c + h * hd, r1 - r0, hd, 3 * c),
                        false,
                        View::strided(ds, r0 * t, r1 - r0, r1, t, 1),
                        View::strided(qkv, c + h * hd, r1, hd, 3 * c, 1),
                        scale,
                        Threads::One,
                    );
                    // Key/value rows [r0, r1) receive from query rows [r0, T) only (causal).
                    // dK[r0..r1] = dS[r0..T, r0..r1]ᵀ·Q[r0..T]/√d_h
                    matmul(
                        ViewMut::strided(dqkv, r0 * 3 * c + c + h * hd, r1 - r0, hd, 3 * c),
                        false,
                        View::strided(ds, r0 * t + r0, t - r0, r1 - r0, t, 1).t(),
                        View::strided(qkv, r0 * 3 * c + h * hd, t - r0, hd, 3 * c, 1),
                        scale,
                        Threads::One,
                    );
                    // dV[r0..r1] = P[r0..T, r0..r1]ᵀ·dY[r0..T]
                    matmul(
                        ViewMut::strided(dqkv, r0 * 3 * c + 2 * c + h * hd, r1 - r0, hd, 3 * c),
                        false,
                        View::strided(p, r0 * t + r0, t - r0, r1 - r0, t, 1).t(),
                        View::strided(dy, r0 * c + h * hd, t - r0, hd, c, 1),
                        1.0,
                        Threads::One,
                    );
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward f64 attention: Σ_{t,c} w·Y for a fixed weight w (so its gradient
    /// with respect to qkv can be taken by finite differences).
    fn objective(qkv: &[f64], w: &[f64], dims: Dims) -> f64 {
        let Dims {
            batch,
            t,
            c,
            heads,
            scale,
        } = dims;
        let hd = c / heads;
        let mut total = 0.0;
        for b in 0..batch {
            for h in 0..heads {
                let at = |r: usize, part: usize, k: usize| {
                    qkv[(b * t + r) * 3 * c + part * c + h * hd + k]
                };
                for i in 0..t {
                    let s: Vec<f64> = (0..=i)
                        .map(|j| {
                            (0..hd).map(|k| at(i, 0, k) * at(j, 1, k)).sum::<f64>()
                                * f64::from(scale)
                        })
                        .collect();
                    let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
                    for k in 0..hd {
                        let y: f64 = (0..=i).map(|j| (s[j] - m).exp() / z * at(j, 2, k)).sum();
                        total += y * w[(b * t + i) * c + h * hd + k];
                    }
                }
            }
        }
        total
    }

    /// Both paths of the transpose (16 × 16 tiles, and any shape) against the definition.
    #[test]
    fn transpose_matches_the_definition() {
        for (rows, cols, stride) in [(32, 64, 200), (48, 16, 16), (7, 5, 9), (70, 8, 24)] {
            let src: Vec<f32> = (0..(rows - 1) * stride + cols).map(|i| i as f32).collect();
            let mut dst = vec![f32::NAN; rows * cols];
            transpose(&mut dst, &src, rows, cols, stride);
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(
                        dst[j * rows + i],
                        src[i * stride + j],
                        "({i}, {j}) of {rows}×{cols}"
                    );
                }
            }
        }
    }

    #[test]
    fn forward_and_backward_match_the_reference() {
        // T = 70 spans two row blocks (64 + 6), so the blocked bounds are exercised; the
        // scores' scale carries a µP-like multiplier.
        let dims = Dims {
            batch: 2,
            t: 70,
            c: 8,
            heads: 2,
            scale: scale(4, 0.7),
        };
        let Dims {
            batch, t, c, heads, ..
        } = dims;
        let qkv: Vec<f32> = (0..batch * t * 3 * c)
            .map(|i| ((i * 37 % 101) as f32 / 101.0 - 0.5) * 2.0)
            .collect();
        let w: Vec<f32> = (0..batch * t * c)
            .map(|i| (i * 13 % 29) as f32 / 29.0 - 0.5)
            .collect();
        let mut y = vec![0f32; batch * t * c];
        let mut att = vec![f32::NAN; batch * heads * t * t];
        forward(&mut y, &mut att, &qkv, dims);
        let q64: Vec<f64> = qkv.iter().map(|&v| f64::from(v)).collect();
        let w64: Vec<f64> = w.iter().map(|&v| f64::from(v)).collect();
        let got: f64 = y.iter().zip(&w).map(|(a, b)| f64::from(a * b)).sum();
        let want = objective(&q64, &w64, dims);
        assert!(
            (got - want).abs() < 1e-4 * want.abs().max(1.0),
            "{got} vs {want}"
        );
        let mut dqkv = vec![f32::NAN; qkv.len()];
        let mut scratch = vec![f32::NAN; batch * t * t];
        backward(&mut dqkv, &mut scratch, &w, &att, &qkv, dims);
        let h = 1e-4;
        // A spread of entries across q, k and v, heads, rows and both batch elements.
        for i in (0..qkv.len()).step_by(29) {
            let (mut up, mut down) = (q64.clone(), q64.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (objective(&up, &w64, dims) - objective(&down, &w64, dims)) / (2.0 * h);
            assert!(
                (f64::from(dqkv[i]) - fd).abs() < 1e-4,
                "dqkv[{i}] = {} vs {fd}",
                dqkv[i]
            );
        }
    }
}
