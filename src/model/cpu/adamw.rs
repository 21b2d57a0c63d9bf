//! AdamW (Loshchilov & Hutter 2019) in place over the flat parameter buffer, in one pass
//! per group, with the global-norm gradient clipping folded in. The arithmetic is candle-nn's
//! `AdamW::step` term for term (decoupled decay θ(1 − lr·λ), bias-corrected moments,
//! ε added to √v̂), so both paths give the same updates.

use rayon::prelude::*;

const CHUNK: usize = 64 * 1024;

/// Hyper-parameters (β₁, β₂ and λ from the study's `train` block).
#[derive(Debug, Clone, Copy)]
pub struct Hyper {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// The optimizer state: first and second moments, one per parameter.
pub struct AdamW {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
    hyper: Hyper,
}

impl AdamW {
    pub fn new(n: usize, hyper: Hyper) -> Self {
        AdamW {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
            hyper,
        }
    }

    /// The moments and the step count (to snapshot).
    pub fn state(&self) -> (&[f32], &[f32], i32) {
        (&self.m, &self.v, self.t)
    }

    /// Restore moments and step count saved by [`AdamW::state`]; `false` if the sizes differ.
    pub fn restore(&mut self, m: &[f32], v: &[f32], t: i32) -> bool {
        if m.len() != self.m.len() || v.len() != self.v.len() {
            return false;
        }
        self.m.copy_from_slice(m);
        self.v.copy_from_slice(v);
        self.t = t;
        true
    }

    /// One update at learning rate `lr` with gradients `grads · grad_scale`, over the
    /// consecutive `groups` that cover the buffer: each trains at `lr · lr_mult`, and weight
    /// decay (θ(1 − lr·lr_mult·λ)) applies to the groups marked `decay` only (matrices and
    /// embeddings, not biases or gains).
    pub fn step(
        &mut self,
        params: &mut [f32],
        grads: &[f32],
        groups: &[Group],
        lr: f64,
        grad_scale: f64,
    ) {
        self.t += 1;
        let h = self.hyper;
        let scale_m = (1.0 / (1.0 - h.beta1.powi(self.t))) as f32;
        let scale_v = (1.0 / (1.0 - h.beta2.powi(self.t))) as f32;
        let (b1, b2) = (h.beta1 as f32, h.beta2 as f32);
        let (one_b1, one_b2) = ((1.0 - h.beta1) as f32, (1.0 - h.beta2) as f32);
        let (eps, g_scale) = (h.eps as f32, grad_scale as f32);
        let mut start = 0;
        for group in groups {
            let range = start..group.end;
            start = group.end;
            let lr = lr * group.lr_mult;
            let decay = if group.decay {
                (1.0 - lr * h.weight_decay) as f32
            } else {
                1.0
            };
            let lr32 = lr as f32;
            let p = &mut params[range.clone()];
            let g = &grads[range.clone()];
            let m = &mut self.m[range.clone()];
            let v = &mut self.v[range];
            p.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
                .for_each(|((p, g), (m, v))| {
                    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut())
                    {
                        let g = g * g_scale;
                        *m = *m * b1 + g * one_b1;
                        *v = *v * b2 + g * g * one_b2;
                        let m_hat = *m * scale_m;
                        let v_hat = *v * scale_v;
                        *p = *p * decay - m_hat / (v_hat.sqrt() + eps) * lr32;
                    }
                });
        }
        debug_assert_eq!(start, params.len(), "the groups cover the buffer");
    }
}

/// One run of consecutive parameters that share a learning-rate multiplier and decay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Group {
    /// End of the group (exclusive); it starts where the previous one ends.
    pub end: usize,
    pub lr_mult: f64,
    pub decay: bool,
}

/// Σ g² in f64, summed in fixed chunks (the same bits whatever the thread count).
pub fn squared_norm(grads: &[f32]) -> f64 {
    let parts: Vec<f64> = grads
        .par_chunks(CHUNK)
        .map(|c| c.iter().map(|&g| f64::from(g) * f64::from(g)).sum())
        .collect();
    parts.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two steps by hand in f64 for one decayed and one plain parameter.
    #[test]
    fn matches_the_formula() {
        let hyper = Hyper {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let mut opt = AdamW::new(2, hyper);
        let mut p = vec![1.0f32, -0.5];
        let grads = [[0.2f32, -0.3], [0.1, 0.4]];
        let (mut m, mut v, mut want) = ([0f64; 2], [0f64; 2], [1.0f64, -0.5]);
        for (t, g) in grads.iter().enumerate() {
            let groups = [
                Group {
                    end: 1,
                    lr_mult: 1.0,
                    decay: true,
                },
                Group {
                    end: 2,
                    lr_mult: 1.0,
                    decay: false,
                },
            ];
            opt.step(&mut p, g, &groups, 1e-2, 0.5);
            for i in 0..2 {
                let gi = f64::from(g[i]) * 0.5;
                m[i] = 0.9 * m[i] + 0.1 * gi;
                v[i] = 0.95 * v[i] + 0.05 * gi * gi;
                let mh = m[i] / (1.0 - 0.9f64.powi(t as i32 + 1));
                let vh = v[i] / (1.0 - 0.95f64.powi(t as i32 + 1));
                let decay = if i == 0 { 1.0 - 1e-2 * 0.1 } else { 1.0 };
                want[i] = want[i] * decay - 1e-2 * mh / (vh.sqrt() + 1e-8);
            }
        }
        for i in 0..2 {
            assert!(
                (f64::from(p[i]) - want[i]).abs() < 1e-6,
                "{i}: {} vs {}",
                p[i],
                want[i]
            );
        }
        assert!((squared_norm(&[3.0, 4.0]) - 25.0).abs() < 1e-12);
    }

    /// A group's multiplier is its learning rate's, decay included: lr 1e-2 × 0.25 is lr
    /// 2.5e-3, bit for bit.
    #[test]
    fn a_groups_multiplier_scales_its_learning_rate() {
        let hyper = Hyper {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let (mut a, mut b) = (AdamW::new(3, hyper), AdamW::new(3, hyper));
        let (mut pa, mut pb) = (vec![1.0f32, -0.5, 0.25], vec![1.0f32, -0.5, 0.25]);
        let g = [0.2f32, -0.3, 0.7];
        let group = |end, lr_mult, decay| Group {
            end,
            lr_mult,
            decay,
        };
        for _ in 0..3 {
            a.step(
                &mut pa,
                &g,
                &[group(1, 0.25, true), group(3, 1.0, true)],
                1e-2,
                1.0,
            );
            b.step(&mut pb, &g, &[group(3, 1.0, true)], 2.5e-3, 1.0);
        }
        assert_eq!(pa[0].to_bits(), pb[0].to_bits());
        assert_ne!(pa[1], pb[1], "the second group trains at the full rate");
    }
}
