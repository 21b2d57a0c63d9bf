//! The CPU training engine: the GPT of [`crate::model::gpt`] with a hand-fused forward and
//! backward over flat f32 buffers (after llm.c, Karpathy 2024), the trainer every study and
//! `scalebook bench train` run on the CPU.
//!
//! Why not candle's autograd here: op by op, candle allocates (and the kernel zero-fills)
//! every intermediate, copies heads in and out of (B, H, T, hd) layout, accumulates gradients
//! with `zeros_like` + `add`, and runs element-wise maps one at a time — together ~70 % of a
//! step, measured (book/src/throughput.md). This engine allocates every activation once per
//! shape, reads heads and transposes as strides into `gemm` (the kernels candle itself
//! calls; only K and V get one transposed copy per head, see [`attention`]), fuses bias and
//! residual adds into the products' starting values, and updates parameters in place.
//! candle's model stays as the reference it is tested against: same names, same initial
//! values, the same loss curve to 1e-4 over 100 steps.

pub mod adamw;
pub mod attention;
#[cfg(test)]
mod coord_check;
pub mod kernels;
pub mod layout;
pub mod matmul;
pub mod profile;
pub mod simd;

use adamw::{AdamW, Group, Hyper};
use attention::Dims;
use layout::Layout;
use matmul::{Threads, View, ViewMut, matmul};

use super::GptConfig;

const LN_EPS: f32 = 1e-5;

/// Activations kept from the forward for the backward, and the backward's scratch, sized for
/// `rows` = batch × T positions; reallocated only when a larger batch comes.
struct Buffers {
    batch: usize,
    /// Residual stream at each block's input, and after the last block: (L + 1) × rows × C.
    resid: Vec<f32>,
    /// After each block's attention residual add: L × rows × C.
    mid: Vec<f32>,
    ln1: Vec<f32>,
    ln1_stats: Vec<f32>,
    ln2: Vec<f32>,
    ln2_stats: Vec<f32>,
    qkv: Vec<f32>,
    /// Attention probabilities: L × B × H × T × T.
    att: Vec<f32>,
    atty: Vec<f32>,
    /// MLP pre-activation and GELU output: L × rows × 4C each.
    fc: Vec<f32>,
    gelu: Vec<f32>,
    lnf: Vec<f32>,
    lnf_stats: Vec<f32>,
    /// rows × V logits, overwritten by their gradient.
    logits: Vec<f32>,
    // Backward scratch, one layer's worth.
    dresid: Vec<f32>,
    /// Column sums of `dresid` after each LayerNorm backward: the bias gradient of the
    /// product whose output gradient `dresid` is next (MLP down, attention projection).
    dresid_sums: Vec<f32>,
    dln: Vec<f32>,
    datty: Vec<f32>,
    dqkv: Vec<f32>,
    dfc: Vec<f32>,
    datt: Vec<f32>,
}

impl Buffers {
    fn new(cfg: &GptConfig, batch: usize) -> Self {
        let (l, c, t, v, h) = (
            cfg.layers as usize,
            cfg.d_model as usize,
            cfg.context as usize,
            cfg.vocab as usize,
            cfg.heads as usize,
        );
        let rows = batch * t;
        let z = |n: usize| vec![0f32; n];
        Buffers {
            batch,
            resid: z((l + 1) * rows * c),
            mid: z(l * rows * c),
            ln1: z(l * rows * c),
            ln1_stats: z(l * 2 * rows),
            ln2: z(l * rows * c),
            ln2_stats: z(l * 2 * rows),
            qkv: z(l * rows * 3 * c),
            att: z(l * batch * h * t * t),
            atty: z(l * rows * c),
            fc: z(l * rows * 4 * c),
            gelu: z(l * rows * 4 * c),
            lnf: z(rows * c),
            lnf_stats: z(2 * rows),
            logits: z(rows * v),
            dresid: z(rows * c),
            dresid_sums: z(c),
            dln: z(rows * c),
            datty: z(rows * c),
            dqkv: z(rows * 3 * c),
            dfc: z(rows * 4 * c),
            datt: z(batch * t * t),
        }
    }
}

/// The i-th of consecutive `len`-element slices.
fn part(buf: &[f32], i: usize, len: usize) -> &[f32] {
    &buf[i * len..(i + 1) * len]
}

fn part_mut(buf: &mut [f32], i: usize, len: usize) -> &mut [f32] {
    &mut buf[i * len..(i + 1) * len]
}

/// A training state: parameters, AdamW moments (one per parameter) and AdamW's step count.
pub struct EngineState<'a> {
    pub params: &'a [f32],
    pub m: &'a [f32],
    pub v: &'a [f32],
    pub t: i32,
}

/// A GPT with its parameters, gradients, optimizer state and activation buffers.
pub struct CpuGpt {
    cfg: GptConfig,
    layout: Layout,
    params: Vec<f32>,
    grads: Vec<f32>,
    opt: AdamW,
    buffers: Option<Buffers>,
}

impl CpuGpt {
    /// Seeded initial weights, identical to candle's model for the same seed.
    pub fn new(cfg: &GptConfig, seed: u64, hyper: Hyper) -> candle_core::Result<Self> {
        if cfg.heads == 0 || !cfg.d_model.is_multiple_of(cfg.heads) {
            candle_core::bail!(
                "d_model {} is not a multiple of heads {}",
                cfg.d_model,
                cfg.heads
            );
        }
        let layout = Layout::new(cfg);
        let params = layout.init(seed)?;
        Ok(CpuGpt {
            cfg: *cfg,
            grads: vec![0.0; layout.total],
            opt: AdamW::new(layout.total, hyper),
            params,
            layout,
            buffers: None,
        })
    }

    pub fn parameter_count(&self) -> usize {
        self.layout.total
    }

    /// Everything training changes: parameters, AdamW moments and step count.
    pub fn state(&self) -> EngineState<'_> {
        let (m, v, t) = self.opt.state();
        EngineState {
            params: &self.params,
            m,
            v,
            t,
        }
    }

    /// Continue from a saved [`CpuGpt::state`]; `false` (nothing changed) if it is another
    /// shape's.
    pub fn restore(&mut self, state: &EngineState) -> bool {
        if state.params.len() != self.params.len() || !self.opt.restore(state.m, state.v, state.t) {
            return false;
        }
        self.params.copy_from_slice(state.params);
        true
    }

    /// Mean next-token loss of `targets` given `ids` (both `batch` × T, T = context) without
    /// touching gradients.
    pub fn loss(&mut self, ids: &[u32], targets: &[u32], batch: usize) -> candle_core::Result<f64> {
        self.forward(ids, targets, batch, false)
    }

    /// [`Self::loss`], and each position's most likely next token with its probability and
    /// the target's negative log-likelihood (the same forward pass: the loss is bit for bit
    /// the one `loss` returns).
    pub fn loss_and_top(
        &mut self,
        ids: &[u32],
        targets: &[u32],
        batch: usize,
    ) -> candle_core::Result<(f64, Vec<kernels::Top>)> {
        let loss = self.forward(ids, targets, batch, false)?;
        let v = self.cfg.vocab as usize;
        let rows = targets.len();
        let buf = self
            .buffers
            .as_ref()
            .expect("the forward pass allocated them");
        Ok((loss, kernels::row_top(&buf.logits[..rows * v], v, targets)))
    }

    /// One training step: forward, backward, global-norm clipping to `grad_clip` (0: off),
    /// AdamW at `lr`. Returns the loss before the update; a non-finite loss leaves the
    /// parameters untouched.
    pub fn step(
        &mut self,
        ids: &[u32],
        targets: &[u32],
        batch: usize,
        lr: f64,
        grad_clip: f64,
    ) -> candle_core::Result<f64> {
        let loss = self.forward(ids, targets, batch, true)?;
        if !loss.is_finite() {
            return Ok(loss);
        }
        self.backward(ids, batch);
        let _timer = profile::Timer::new(profile::Section::Optimizer);
        let mut scale = 1.0;
        if grad_clip > 0.0 {
            let norm = adamw::squared_norm(&self.grads).sqrt();
            if norm > grad_clip {
                scale = grad_clip / (norm + 1e-6);
            }
        }
        let lay = &self.layout;
        let groups = [
            Group {
                end: lay.hidden,
                lr_mult: lay.mult.hidden_lr,
                decay: true,
            },
            Group {
                end: lay.decayed,
                lr_mult: 1.0,
                decay: true,
            },
            Group {
                end: lay.total,
                lr_mult: 1.0,
                decay: false,
            },
        ];
        self.opt
            .step(&mut self.params, &self.grads, &groups, lr, scale);
        Ok(loss)
    }

    fn forward(
        &mut self,
        ids: &[u32],
        targets: &[u32],
        batch: usize,
        grad: bool,
    ) -> candle_core::Result<f64> {
        let cfg = self.cfg;
        let (c, t, v) = (
            cfg.d_model as usize,
            cfg.context as usize,
            cfg.vocab as usize,
        );
        let rows = batch * t;
        if ids.len() != rows || targets.len() != rows {
            candle_core::bail!(
                "expected {rows} input and target ids for batch {batch} × context {t}, got {} and {}",
                ids.len(),
                targets.len()
            );
        }
        if let Some(&bad) = ids.iter().chain(targets).find(|&&i| i as usize >= v) {
            candle_core::bail!("token id {bad} is outside the vocabulary of {v}");
        }
        if self.buffers.as_ref().is_none_or(|b| b.batch < batch) {
            // Free the smaller set first: both at once would raise the peak RSS.
            self.buffers = None;
            self.buffers = Some(Buffers::new(&cfg, batch));
        }
        let buf = self.buffers.as_mut().expect("allocated above");
        let p = &self.params;
        let lay = &self.layout;
        let dims = Dims {
            batch,
            t,
            c,
            heads: cfg.heads as usize,
            scale: attention::scale(c / cfg.heads as usize, lay.mult.attention),
        };
        let (rc, r3, r4) = (rows * c, rows * 3 * c, rows * 4 * c);
        let att_len = batch * dims.heads * t * t;

        kernels::embed(
            &mut buf.resid[..rc],
            ids,
            &p[lay.wte.clone()],
            &p[lay.wpe.clone()],
            t,
            c,
        );
        for (l, bp) in lay.blocks.iter().enumerate() {
            let (before, after) = buf.resid.split_at_mut((l + 1) * rc);
            let x = &before[l * rc..];
            let out = &mut after[..rc];
            let ln1 = part_mut(&mut buf.ln1, l, rc);
            let (m1, r1) = part_mut(&mut buf.ln1_stats, l, 2 * rows).split_at_mut(rows);
            let (g1, b1) = (&p[bp.ln1_w.clone()], &p[bp.ln1_b.clone()]);
            kernels::layer_norm(ln1, m1, r1, x, g1, b1, LN_EPS);
            let qkv = part_mut(&mut buf.qkv, l, r3);
            let (w, b) = (&p[bp.qkv_w.clone()], &p[bp.qkv_b.clone()]);
            linear(qkv, None, ln1, w, b, rows);
            let atty = part_mut(&mut buf.atty, l, rc);
            attention::forward(atty, part_mut(&mut buf.att, l, att_len), qkv, dims);
            let mid = part_mut(&mut buf.mid, l, rc);
            let (w, b) = (&p[bp.proj_w.clone()], &p[bp.proj_b.clone()]);
            linear(mid, Some(x), atty, w, b, rows);
            let ln2 = part_mut(&mut buf.ln2, l, rc);
            let (m2, r2) = part_mut(&mut buf.ln2_stats, l, 2 * rows).split_at_mut(rows);
            let (g2, b2) = (&p[bp.ln2_w.clone()], &p[bp.ln2_b.clone()]);
            kernels::layer_norm(ln2, m2, r2, mid, g2, b2, LN_EPS);
            let fc = part_mut(&mut buf.fc, l, r4);
            let (w, b) = (&p[bp.fc_w.clone()], &p[bp.fc_b.clone()]);
            linear(fc, None, ln2, w, b, rows);
            let gelu = part_mut(&mut buf.gelu, l, r4);
            kernels::gelu(gelu, fc);
            let (w, b) = (&p[bp.fc2_w.clone()], &p[bp.fc2_b.clone()]);
            linear(out, Some(mid), gelu, w, b, rows);
        }
        let layers = lay.blocks.len();
        let (mf, rf) = buf.lnf_stats[..2 * rows].split_at_mut(rows);
        kernels::layer_norm(
            &mut buf.lnf[..rc],
            mf,
            rf,
            part(&buf.resid, layers, rc),
            &p[lay.ln_f_w.clone()],
            &p[lay.ln_f_b.clone()],
            LN_EPS,
        );
        let logits = &mut buf.logits[..rows * v];
        matmul(
            ViewMut::rows(logits, rows, v),
            false,
            View::rows(&buf.lnf[..rc], rows, c),
            View::rows(&p[lay.head.clone()], v, c).t(),
            lay.mult.logits as f32,
            Threads::Pool,
        );
        Ok(kernels::cross_entropy(logits, targets, grad))
    }

    /// Gradients of the last [`Self::forward`] (with `grad`) into `self.grads`.
    fn backward(&mut self, ids: &[u32], batch: usize) {
        let cfg = self.cfg;
        let (c, t, v) = (
            cfg.d_model as usize,
            cfg.context as usize,
            cfg.vocab as usize,
        );
        let rows = batch * t;
        let buf = self.buffers.as_mut().expect("forward ran");
        let p = &self.params;
        let g = &mut self.grads;
        let lay = &self.layout;
        let dims = Dims {
            batch,
            t,
            c,
            heads: cfg.heads as usize,
            scale: attention::scale(c / cfg.heads as usize, lay.mult.attention),
        };
        let (rc, r3, r4) = (rows * c, rows * 3 * c, rows * 4 * c);
        let att_len = batch * dims.heads * t * t;
        let layers = lay.blocks.len();
        let dlogits = &buf.logits[..rows * v];
        let lnf = &buf.lnf[..rc];

        // Head: d head = dlogitsᵀ·lnf (overwrites; a tied wte then adds the embedding's).
        let logit_mult = lay.mult.logits as f32;
        matmul(
            ViewMut::rows(&mut g[lay.head.clone()], v, c),
            false,
            View::rows(dlogits, rows, v).t(),
            View::rows(lnf, rows, c),
            logit_mult,
            Threads::Pool,
        );
        if !cfg.tie_embeddings {
            // Tied, the head's product above already wrote wte's gradient.
            g[lay.wte.clone()].fill(0.0);
        }
        let dln = &mut buf.dln[..rc];
        matmul(
            ViewMut::rows(dln, rows, c),
            false,
            View::rows(dlogits, rows, v),
            View::rows(&p[lay.head.clone()], v, c),
            logit_mult,
            Threads::Pool,
        );
        let dres = &mut buf.dresid[..rc];
        let dres_sums = &mut buf.dresid_sums[..];
        dres.fill(0.0);
        {
            let (dw, db) = split_pair(g, &lay.ln_f_w, &lay.ln_f_b);
            let (mf, rf) = buf.lnf_stats[..2 * rows].split_at(rows);
            kernels::layer_norm_backward(
                dres,
                dres_sums,
                dw,
                db,
                dln,
                part(&buf.resid, layers, rc),
                mf,
                rf,
                &p[lay.ln_f_w.clone()],
            );
        }
        let datty = &mut buf.datty[..rc];
        let dqkv = &mut buf.dqkv[..r3];
        let dfc = &mut buf.dfc[..r4];
        let datt = &mut buf.datt[..batch * t * t];
        for (l, bp) in lay.blocks.iter().enumerate().rev() {
            let x = part(&buf.resid, l, rc);
            let mid = part(&buf.mid, l, rc);
            // out = mid + gelu·fc2ᵀ + b: dres is d out, and its column sums (from the
            // LayerNorm backward that wrote it) are d b.
            let (dw, db) = split_pair(g, &bp.fc2_w, &bp.fc2_b);
            db.copy_from_slice(dres_sums);
            let fc2_w = &p[bp.fc2_w.clone()];
            linear_backward(dw, None, dfc, dres, part(&buf.gelu, l, r4), fc2_w, rows);
            let (dw, db) = split_pair(g, &bp.fc_w, &bp.fc_b);
            kernels::gelu_backward(dfc, db, part(&buf.fc, l, r4));
            let fc_w = &p[bp.fc_w.clone()];
            linear_backward(dw, None, dln, dfc, part(&buf.ln2, l, rc), fc_w, rows);
            {
                let (dw, db) = split_pair(g, &bp.ln2_w, &bp.ln2_b);
                let (m2, r2) = part(&buf.ln2_stats, l, 2 * rows).split_at(rows);
                let ln2_w = &p[bp.ln2_w.clone()];
                kernels::layer_norm_backward(dres, dres_sums, dw, db, dln, mid, m2, r2, ln2_w);
            }
            // mid = x + atty·projᵀ + b: dres is now d mid.
            let (dw, db) = split_pair(g, &bp.proj_w, &bp.proj_b);
            db.copy_from_slice(dres_sums);
            let proj_w = &p[bp.proj_w.clone()];
            linear_backward(dw, None, datty, dres, part(&buf.atty, l, rc), proj_w, rows);
            let qkv = part(&buf.qkv, l, r3);
            attention::backward(dqkv, datt, datty, part(&buf.att, l, att_len), qkv, dims);
            let (dw, db) = split_pair(g, &bp.qkv_w, &bp.qkv_b);
            let qkv_w = &p[bp.qkv_w.clone()];
            linear_backward(dw, Some(db), dln, dqkv, part(&buf.ln1, l, rc), qkv_w, rows);
            let (dw, db) = split_pair(g, &bp.ln1_w, &bp.ln1_b);
            let (m1, r1) = part(&buf.ln1_stats, l, 2 * rows).split_at(rows);
            let ln1_w = &p[bp.ln1_w.clone()];
            kernels::layer_norm_backward(dres, dres_sums, dw, db, dln, x, m1, r1, ln1_w);
        }
        let (dwte, dwpe) = split_pair(g, &lay.wte, &lay.wpe);
        kernels::embed_backward(dwte, dwpe, dres, ids, t, c);
    }
}

/// out ← base + x·Wᵀ + b for x (rows × in), W (out × in, as torch.nn.Linear), b (out):
/// the bias (and the residual stream, when `base` is given) is the product's starting value.
fn linear(out: &mut [f32], base: Option<&[f32]>, x: &[f32], w: &[f32], b: &[f32], rows: usize) {
    let (outputs, inputs) = (b.len(), x.len() / rows);
    kernels::fill_rows(out, base, b);
    matmul(
        ViewMut::rows(out, rows, outputs),
        true,
        View::rows(x, rows, inputs),
        View::rows(w, outputs, inputs).t(),
        1.0,
        Threads::Pool,
    );
}

/// The backward of [`linear`] given dy (rows × out): dW = dyᵀ·x, db = Σ_rows dy (when asked
/// for: `None` where the pass that wrote dy already summed it), dx = dy·W, all overwritten.
fn linear_backward(
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dx: &mut [f32],
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    rows: usize,
) {
    let inputs = x.len() / rows;
    let outputs = dw.len() / inputs;
    matmul(
        ViewMut::rows(dw, outputs, inputs),
        false,
        View::rows(dy, rows, outputs).t(),
        View::rows(x, rows, inputs),
        1.0,
        Threads::Pool,
    );
    if let Some(db) = db {
        kernels::column_sums(db, dy);
    }
    matmul(
        ViewMut::rows(dx, rows, inputs),
        false,
        View::rows(dy, rows, outputs),
        View::rows(w, outputs, inputs),
        1.0,
        Threads::Pool,
    );
}

/// Two disjoint ranges of one buffer, mutably.
fn split_pair<'a>(
    buf: &'a mut [f32],
    a: &std::ops::Range<usize>,
    b: &std::ops::Range<usize>,
) -> (&'a mut [f32], &'a mut [f32]) {
    assert!(a.end <= b.start || b.end <= a.start, "ranges overlap");
    if a.start < b.start {
        let (lo, hi) = buf.split_at_mut(b.start);
        (&mut lo[a.clone()], &mut hi[..b.len()])
    } else {
        let (lo, hi) = buf.split_at_mut(a.start);
        (&mut hi[..a.len()], &mut lo[b.clone()])
    }
}

#[cfg(test)]
mod tests;
