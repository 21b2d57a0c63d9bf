//! The engine's element-wise and row-wise kernels, each one pass over memory, split over the
//! rayon pool in fixed row chunks so every reduction is summed in the same order whatever
//! the thread count (the same seed gives the same bits).
//!
//! - LayerNorm (Ba et al. 2016): y = (x − μ)/√(σ² + ε)·γ + β, biased σ², ε = 1e-5; its
//!   backward after llm.c (Karpathy 2024): with x̂ the normalised input and ĝ = γ ⊙ g,
//!   dx = (ĝ − mean(ĝ) − x̂·mean(ĝ ⊙ x̂))/√(σ² + ε), dγ = Σ g ⊙ x̂, dβ = Σ g.
//! - GELU, tanh form (Hendrycks & Gimpel 2016): ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
//! - Softmax cross-entropy: loss = log Σ e^z − z_y per row; dz = (softmax(z) − onehot(y))/rows.

use rayon::prelude::*;

use super::profile::{self, Section};
use super::simd::{self, multiversion};

/// √(2/π), as candle and PyTorch use it.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const CUBIC: f32 = 0.044_715;
/// Elements per parallel task: large enough to amortise a task, small enough to balance.
const CHUNK: usize = 32 * 1024;

/// Rows per parallel task for rows of `width` elements.
pub fn rows_per_task(width: usize) -> usize {
    (CHUNK / width.max(1)).max(1)
}

/// e^x in f32 for |x| ≤ 88: Cody–Waite reduction by ln 2, degree-7 Taylor polynomial
/// (~1 ulp; branch-free so loops over it vectorise, unlike libm's `expf`).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
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

/// y = gelu(x).
pub fn gelu(y: &mut [f32], x: &[f32]) {
    let _timer = profile::Timer::new(Section::Gelu);
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(y, x)| gelu_chunk(y, x));
}

multiversion! {
    fn gelu_chunk(y: &mut [f32], x: &[f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = gelu_f32(v);
        }
    }
}

/// g ← g ⊙ gelu'(x) for rows of g and x (rows × `db.len()`), in place (the gradient buffer
/// becomes the pre-activation's gradient), and db ← the column sums of the result: the
/// gradient of the bias that the pre-activation's product added, taken in the same pass
/// instead of a second read of g. Chunked and summed exactly as [`column_sums`], so the
/// bits are the same as that separate pass.
pub fn gelu_backward(g: &mut [f32], db: &mut [f32], x: &[f32]) {
    let _timer = profile::Timer::new(Section::Gelu);
    let width = db.len();
    let per = rows_per_task(width) * width;
    let chunks = g.par_chunks_mut(per).zip(x.par_chunks(per));
    let partials = partial_sums(chunks, width, |(g, x), acc| gelu_backward_chunk(g, acc, x));
    sum_in_order(db, partials.iter().map(Vec::as_slice));
}

multiversion! {
    fn gelu_backward_chunk(g: &mut [f32], acc: &mut [f32], x: &[f32]) {
        let width = acc.len();
        for (gr, xr) in g.chunks_mut(width).zip(x.chunks(width)) {
            for ((o, &v), a) in gr.iter_mut().zip(xr).zip(acc.iter_mut()) {
                *o *= gelu_grad_f32(v);
                *a += *o;
            }
        }
    }
}

/// Every row of `y` (rows × width) ← `base` row + `bias` (`base` None: the bias alone), the
/// starting value a product is then accumulated onto (bias add and residual add fused).
pub fn fill_rows(y: &mut [f32], base: Option<&[f32]>, bias: &[f32]) {
    let _timer = profile::Timer::new(Section::BiasAndResidual);
    let width = bias.len();
    let per = rows_per_task(width) * width;
    match base {
        Some(base) => y
            .par_chunks_mut(per)
            .zip(base.par_chunks(per))
            .for_each(|(y, base)| add_rows_chunk(y, base, bias)),
        None => y.par_chunks_mut(per).for_each(|y| {
            for yr in y.chunks_mut(width) {
                yr.copy_from_slice(bias);
            }
        }),
    }
}

multiversion! {
    fn add_rows_chunk(y: &mut [f32], base: &[f32], bias: &[f32]) {
        for (yr, br) in y.chunks_mut(bias.len()).zip(base.chunks(bias.len())) {
            for ((o, &b), &c) in yr.iter_mut().zip(br).zip(bias) {
                *o = b + c;
            }
        }
    }
}

/// Column sums of `g` (rows × out.len()) into `out` (a bias gradient), overwriting it.
pub fn column_sums(out: &mut [f32], g: &[f32]) {
    let _timer = profile::Timer::new(Section::BiasAndResidual);
    let width = out.len();
    let per = rows_per_task(width) * width;
    let partials = partial_sums(g.par_chunks(per), width, |g, acc| column_sums_chunk(acc, g));
    sum_in_order(out, partials.iter().map(Vec::as_slice));
}

/// One zeroed `len`-long accumulator per chunk, filled by `fill(chunk, accumulator)` in
/// parallel, returned in chunk order for [`sum_in_order`].
fn partial_sums<I: IndexedParallelIterator>(
    chunks: I,
    len: usize,
    fill: impl Fn(I::Item, &mut [f32]) + Sync + Send,
) -> Vec<Vec<f32>> {
    chunks
        .map(|chunk| {
            let mut acc = vec![0f32; len];
            fill(chunk, &mut acc);
            acc
        })
        .collect()
}

/// out ← Σ of the per-chunk partial sums, added in chunk order (so the bits do not depend on
/// which thread finished first).
fn sum_in_order<'a>(out: &mut [f32], partials: impl Iterator<Item = &'a [f32]>) {
    out.fill(0.0);
    for p in partials {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
}

multiversion! {
    fn column_sums_chunk(acc: &mut [f32], g: &[f32]) {
        for row in g.chunks(acc.len()) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
    }
}

/// LayerNorm forward over rows of `x`; keeps each row's mean and 1/σ for the backward.
pub fn layer_norm(
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    x: &[f32],
    gain: &[f32],
    bias: &[f32],
    eps: f32,
) {
    let _timer = profile::Timer::new(Section::LayerNorm);
    let d = gain.len();
    let rows = rows_per_task(d);
    y.par_chunks_mut(rows * d)
        .zip(x.par_chunks(rows * d))
        .zip(mean.par_chunks_mut(rows).zip(rstd.par_chunks_mut(rows)))
        .for_each(|((y, x), (mean, rstd))| layer_norm_chunk(y, mean, rstd, x, gain, bias, eps));
}

multiversion! {
    fn layer_norm_chunk(
        y: &mut [f32],
        mean: &mut [f32],
        rstd: &mut [f32],
        x: &[f32],
        gain: &[f32],
        bias: &[f32],
        eps: f32,
    ) {
        let d = gain.len();
        for (((yr, xr), m), r) in y
            .chunks_mut(d)
            .zip(x.chunks(d))
            .zip(mean.iter_mut())
            .zip(rstd.iter_mut())
        {
            let mu = simd::sum(xr) / d as f32;
            let var = simd::sum_map(xr, |a| (a - mu) * (a - mu)) / d as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for (((o, &v), &g), &b) in yr.iter_mut().zip(xr).zip(gain).zip(bias) {
                *o = (v - mu) * inv * g + b;
            }
            *m = mu;
            *r = inv;
        }
    }
}

/// LayerNorm backward: dx += the input gradient (the residual stream's gradient is
/// accumulated in place), dgain/dbias overwritten, and `dx_sums` ← the column sums of the
/// updated dx. dx is the gradient of the residual stream, which is also the output gradient
/// of the product that added to it (attention projection, MLP down), so those sums are that
/// product's bias gradient, taken here while the rows are in registers instead of in a
/// second pass; they are chunked and summed exactly as [`column_sums`] would.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    dx: &mut [f32],
    dx_sums: &mut [f32],
    dgain: &mut [f32],
    dbias: &mut [f32],
    g: &[f32],
    x: &[f32],
    mean: &[f32],
    rstd: &[f32],
    gain: &[f32],
) {
    let _timer = profile::Timer::new(Section::LayerNorm);
    let d = gain.len();
    let rows = rows_per_task(d);
    let chunks = dx
        .par_chunks_mut(rows * d)
        .zip(g.par_chunks(rows * d).zip(x.par_chunks(rows * d)))
        .zip(mean.par_chunks(rows).zip(rstd.par_chunks(rows)));
    // Per chunk: [dgain | dbias | dx sums], each d long.
    let partials = partial_sums(chunks, 3 * d, |((dx, (g, x)), (mean, rstd)), sums| {
        let mut scratch = vec![0f32; 2 * d];
        layer_norm_backward_chunk(dx, sums, &mut scratch, g, x, mean, rstd, gain);
    });
    for (i, out) in [dgain, dbias, dx_sums].into_iter().enumerate() {
        sum_in_order(out, partials.iter().map(|p| &p[i * d..(i + 1) * d]));
    }
}

multiversion! {
    /// One chunk of rows; `sums` (3d) accumulates dgain, dbias and the column sums of the
    /// updated dx; `scratch` (2d) holds a row's x̂ and γ ⊙ g.
    fn layer_norm_backward_chunk(
        dx: &mut [f32],
        sums: &mut [f32],
        scratch: &mut [f32],
        g: &[f32],
        x: &[f32],
        mean: &[f32],
        rstd: &[f32],
        gain: &[f32],
    ) {
        let d = gain.len();
        let (xhat, gh) = scratch.split_at_mut(d);
        let (dgain, rest) = sums.split_at_mut(d);
        let (dbias, dx_sums) = rest.split_at_mut(d);
        for ((((dxr, gr), xr), &mu), &inv) in dx
            .chunks_mut(d)
            .zip(g.chunks(d))
            .zip(x.chunks(d))
            .zip(mean)
            .zip(rstd)
        {
            for ((((xh, ghj), &gj), &xj), &wj) in
                xhat.iter_mut().zip(gh.iter_mut()).zip(gr).zip(xr).zip(gain)
            {
                *xh = (xj - mu) * inv;
                *ghj = gj * wj;
            }
            let mean_g = simd::sum(gh) / d as f32;
            let mean_gx = simd::dot(gh, xhat) / d as f32;
            for ((((((o, &gj), &xh), &ghj), dw), db), s) in dxr
                .iter_mut()
                .zip(gr)
                .zip(xhat.iter())
                .zip(gh.iter())
                .zip(dgain.iter_mut())
                .zip(dbias.iter_mut())
                .zip(dx_sums.iter_mut())
            {
                *o += (ghj - mean_g - xh * mean_gx) * inv;
                *dw += gj * xh;
                *db += gj;
                *s += *o;
            }
        }
    }
}

/// Softmax cross-entropy over rows of `logits` (rows × V) against `targets`: returns the
/// mean loss; with `grad`, overwrites the logits with d(mean loss)/d logits.
pub fn cross_entropy(logits: &mut [f32], targets: &[u32], grad: bool) -> f64 {
    let _timer = profile::Timer::new(Section::CrossEntropy);
    let v = logits.len() / targets.len().max(1);
    let scale = 1.0 / targets.len() as f32;
    let rows = rows_per_task(v);
    let losses: Vec<f64> = logits
        .par_chunks_mut(rows * v)
        .zip(targets.par_chunks(rows))
        .map(|(z, ys)| cross_entropy_chunk(z, ys, scale, grad))
        .collect();
    losses.iter().sum::<f64>() / targets.len() as f64
}

multiversion! {
    fn cross_entropy_chunk(z: &mut [f32], ys: &[u32], scale: f32, grad: bool) -> f64 {
        let v = z.len() / ys.len().max(1);
        let mut sum = 0f64;
        for (zr, &y) in z.chunks_mut(v).zip(ys) {
            let m = simd::max(zr);
            let total = simd::sum_map(zr, |a| exp_f32(a - m));
            let lse = m + total.ln();
            sum += f64::from(lse - zr[y as usize]);
            if grad {
                for a in zr.iter_mut() {
                    *a = exp_f32(*a - lse) * scale;
                }
                zr[y as usize] -= scale;
            }
        }
        sum
    }
}

/// What an evaluation reads of one position beyond the loss: the most likely next token,
/// its softmax probability, and the target's negative log-likelihood.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Top {
    pub best: u32,
    pub p: f32,
    pub nll: f32,
}

/// Each row of `logits` (rows × V, left untouched) read against its target: what the metrics
/// read after an evaluation's forward pass.
pub fn row_top(logits: &[f32], v: usize, targets: &[u32]) -> Vec<Top> {
    let rows = rows_per_task(v);
    logits
        .par_chunks(rows * v)
        .zip(targets.par_chunks(rows))
        .flat_map_iter(|(z, y)| {
            z.chunks(v)
                .zip(y)
                .map(|(z, &y)| top_of_row(z, y))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The first largest logit's index, its softmax probability, and −ln p of token `y`.
fn top_of_row(z: &[f32], y: u32) -> Top {
    let (mut best, mut m) = (0usize, f32::NEG_INFINITY);
    for (i, &a) in z.iter().enumerate() {
        if a > m {
            (best, m) = (i, a);
        }
    }
    let total = simd::sum_map(z, |a| exp_f32(a - m));
    Top {
        best: best as u32,
        p: 1.0 / total,
        nll: total.ln() + m - z[y as usize],
    }
}

multiversion! {
    /// One attention score row in place: softmax over columns 0..=i (the causal window),
    /// zero beyond, so masked entries never reach the exponential.
    pub fn causal_softmax_row(row: &mut [f32], i: usize) {
        let (valid, masked) = row.split_at_mut(i + 1);
        let m = simd::max(valid);
        for v in valid.iter_mut() {
            *v = exp_f32(*v - m);
        }
        let inv = 1.0 / simd::sum(valid);
        for v in valid.iter_mut() {
            *v *= inv;
        }
        masked.fill(0.0);
    }
}

multiversion! {
    /// The softmax backward of one row in place: d ← p ⊙ (d − Σ p ⊙ d) over 0..=i, 0 beyond.
    pub fn softmax_backward_row(d: &mut [f32], p: &[f32], i: usize) {
        let (valid, masked) = d.split_at_mut(i + 1);
        let p = &p[..=i];
        let dot = simd::dot(valid, p);
        for (dj, &pj) in valid.iter_mut().zip(p) {
            *dj = pj * (*dj - dot);
        }
        masked.fill(0.0);
    }
}

/// x[b, t] = wte[ids[b, t]] + wpe[t] for rows of width d (t = row index mod `t_len`).
pub fn embed(x: &mut [f32], ids: &[u32], wte: &[f32], wpe: &[f32], t_len: usize, d: usize) {
    let _timer = profile::Timer::new(Section::Embedding);
    x.par_chunks_mut(d)
        .zip(ids.par_iter())
        .enumerate()
        .for_each(|(r, (xr, &id))| {
            let tok = &wte[id as usize * d..(id as usize + 1) * d];
            let pos = &wpe[(r % t_len) * d..(r % t_len + 1) * d];
            for ((o, &a), &b) in xr.iter_mut().zip(tok).zip(pos) {
                *o = a + b;
            }
        });
}

/// The embeddings' backward: dwte[id] += g row, dwpe[t] = Σ_b g[b, t] (dwpe overwritten,
/// dwte accumulated, so a tied head's gradient already in it is kept). Rows are visited in
/// order, so repeated tokens sum identically every run.
pub fn embed_backward(
    dwte: &mut [f32],
    dwpe: &mut [f32],
    g: &[f32],
    ids: &[u32],
    t_len: usize,
    d: usize,
) {
    let _timer = profile::Timer::new(Section::Embedding);
    dwpe[..t_len * d].fill(0.0);
    for (r, (gr, &id)) in g.chunks(d).zip(ids).enumerate() {
        let tok = &mut dwte[id as usize * d..(id as usize + 1) * d];
        for (o, &v) in tok.iter_mut().zip(gr) {
            *o += v;
        }
        let pos = &mut dwpe[(r % t_len) * d..(r % t_len + 1) * d];
        for (o, &v) in pos.iter_mut().zip(gr) {
            *o += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm() {
        for i in -870..=880 {
            let x = i as f32 * 0.1;
            let (a, b) = (exp_f32(x), x.exp());
            assert!(((a - b) / b).abs() < 4e-7, "exp({x}) = {a}, libm {b}");
        }
    }

    #[test]
    fn gelu_gradient_matches_finite_differences() {
        for i in -60..=60 {
            let x = i as f64 * 0.1;
            let exact = |x: f64| {
                0.5 * x
                    * (1.0
                        + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
            };
            assert!(
                (f64::from(gelu_f32(x as f32)) - exact(x)).abs() < 1e-6,
                "gelu({x})"
            );
            let h = 1e-4;
            let fd = (exact(x + h) - exact(x - h)) / (2.0 * h);
            assert!(
                (f64::from(gelu_grad_f32(x as f32)) - fd).abs() < 1e-5,
                "gelu'({x})"
            );
        }
    }

    /// Finite differences of Σ w ⊙ LayerNorm(x) in f64 against the backward.
    #[test]
    fn layer_norm_backward_matches_finite_differences() {
        let (rows, d) = (3, 8);
        let x: Vec<f32> = (0..rows * d)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3)
            .collect();
        let gain: Vec<f32> = (0..d).map(|i| 1.0 + 0.1 * i as f32).collect();
        let bias: Vec<f32> = (0..d).map(|i| 0.05 * i as f32).collect();
        let w: Vec<f32> = (0..rows * d)
            .map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.2)
            .collect();
        let objective = |x: &[f32], gain: &[f32]| -> f64 {
            let mut y = vec![0f32; rows * d];
            let (mut m, mut r) = (vec![0f32; rows], vec![0f32; rows]);
            layer_norm(&mut y, &mut m, &mut r, x, gain, &bias, 1e-5);
            y.iter().zip(&w).map(|(a, b)| f64::from(a * b)).sum()
        };
        let mut y = vec![0f32; rows * d];
        let (mut m, mut r) = (vec![0f32; rows], vec![0f32; rows]);
        layer_norm(&mut y, &mut m, &mut r, &x, &gain, &bias, 1e-5);
        let mut dx = vec![0f32; rows * d];
        let (mut dg, mut db, mut sums) = (vec![0f32; d], vec![0f32; d], vec![0f32; d]);
        layer_norm_backward(&mut dx, &mut sums, &mut dg, &mut db, &w, &x, &m, &r, &gain);
        let h = 1e-2f32;
        for i in 0..rows * d {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (objective(&up, &gain) - objective(&down, &gain)) / (2.0 * f64::from(h));
            assert!(
                (f64::from(dx[i]) - fd).abs() < 2e-3,
                "dx[{i}] {} vs {fd}",
                dx[i]
            );
        }
        for j in 0..d {
            let (mut up, mut down) = (gain.clone(), gain.clone());
            up[j] += h;
            down[j] -= h;
            let fd = (objective(&x, &up) - objective(&x, &down)) / (2.0 * f64::from(h));
            assert!((f64::from(dg[j]) - fd).abs() < 2e-3, "dgain[{j}]");
            let want: f32 = (0..rows).map(|r| w[r * d + j]).sum();
            assert!((db[j] - want).abs() < 1e-6);
        }
    }

    /// Rows × width values with a spread of magnitudes (so a different summation order
    /// would show in the low bits).
    fn wavy(n: usize, k: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 * k).sin() * (1.0 + (i % 7) as f32))
            .collect()
    }

    /// The bias gradients taken inside the GELU and LayerNorm backward passes are bit for
    /// bit the separate column-sum pass over the same result, at widths whose rows do and
    /// do not divide the parallel chunk (1536 = 4·384).
    #[test]
    fn fused_bias_gradients_equal_the_separate_column_sums() {
        for width in [64, 1536] {
            let rows = 3 * rows_per_task(width) + 5;
            let x = wavy(rows * width, 0.37);
            let mut g = wavy(rows * width, 0.11);
            let mut want_g = g.clone();
            let mut db = vec![f32::NAN; width];
            gelu_backward(&mut g, &mut db, &x);
            for (o, &v) in want_g.iter_mut().zip(&x) {
                *o *= gelu_grad_f32(v);
            }
            assert_eq!(g, want_g, "GELU backward values");
            let mut want = vec![0f32; width];
            column_sums(&mut want, &g);
            assert_eq!(db, want, "GELU bias gradient, width {width}");

            let gain = wavy(width, 0.05);
            let (mean, rstd) = (wavy(rows, 0.3), vec![1.5f32; rows]);
            let mut dx = wavy(rows * width, 0.23);
            let (mut dg, mut dbias, mut sums) =
                (vec![0f32; width], vec![0f32; width], vec![0f32; width]);
            layer_norm_backward(
                &mut dx, &mut sums, &mut dg, &mut dbias, &g, &x, &mean, &rstd, &gain,
            );
            column_sums(&mut want, &dx);
            assert_eq!(sums, want, "LayerNorm dx sums, width {width}");
        }
    }

    #[test]
    fn cross_entropy_value_and_gradient() {
        let mut z = vec![1.0f32, 2.0, 3.0, 0.5, 0.5, 0.5];
        let loss = cross_entropy(&mut z, &[2, 0], true);
        let row0 = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() - 3.0;
        let row1 = 3f64.ln();
        assert!((loss - (row0 + row1) / 2.0).abs() < 1e-6);
        // Each row of the gradient sums to zero; the target entry is negative.
        assert!((z[0] + z[1] + z[2]).abs() < 1e-6 && z[2] < 0.0);
        assert!((z[4] - 1.0 / 6.0).abs() < 1e-6 && (z[3] - (1.0 / 6.0 - 0.5)).abs() < 1e-6);
    }
}
