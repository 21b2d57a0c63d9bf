//! Where every parameter lives in the engine's one flat buffer: the same names, shapes and
//! initial values as candle's model ([`crate::model::gpt`]), matrices first (the AdamW group
//! with weight decay) and then vectors, each group sorted by name — so the blocks' hidden
//! matrices (the ones µP scales) are the buffer's first prefix.

use std::ops::Range;

use candle_nn::Init;

use crate::model::init::seeded_values;
use crate::model::{GptConfig, Multipliers};

/// N(0, 0.02) for every matrix (Radford et al. 2019; nanoGPT), as in `gpt.rs`; µP scales the
/// hidden matrices' deviation ([`Multipliers::hidden_init`]).
pub const MATRIX_STDEV: f64 = 0.02;

/// One parameter tensor.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub range: Range<usize>,
}

/// The parameters of one transformer block.
#[derive(Debug, Clone)]
pub struct BlockParams {
    pub ln1_w: Range<usize>,
    pub ln1_b: Range<usize>,
    pub qkv_w: Range<usize>,
    pub qkv_b: Range<usize>,
    pub proj_w: Range<usize>,
    pub proj_b: Range<usize>,
    pub ln2_w: Range<usize>,
    pub ln2_b: Range<usize>,
    pub fc_w: Range<usize>,
    pub fc_b: Range<usize>,
    pub fc2_w: Range<usize>,
    pub fc2_b: Range<usize>,
}

/// The whole table.
#[derive(Debug, Clone)]
pub struct Layout {
    pub params: Vec<Param>,
    /// Elements of the blocks' matrices (QKV, attention output, MLP): the prefix [0, hidden).
    pub hidden: usize,
    /// Elements of the decayed group (matrices): the buffer's prefix [0, decayed).
    pub decayed: usize,
    /// The shape's width multipliers (all 1 under the standard parametrisation).
    pub mult: Multipliers,
    pub total: usize,
    pub wte: Range<usize>,
    pub wpe: Range<usize>,
    pub blocks: Vec<BlockParams>,
    pub ln_f_w: Range<usize>,
    pub ln_f_b: Range<usize>,
    /// The output head's weight (V × C): `wte` when tied.
    pub head: Range<usize>,
}

impl Layout {
    pub fn new(cfg: &GptConfig) -> Self {
        let (d, v, t) = (
            cfg.d_model as usize,
            cfg.vocab as usize,
            cfg.context as usize,
        );
        let mut specs: Vec<(String, Vec<usize>)> = vec![
            ("wte.weight".into(), vec![v, d]),
            ("wpe.weight".into(), vec![t, d]),
            ("ln_f.weight".into(), vec![d]),
            ("ln_f.bias".into(), vec![d]),
        ];
        if !cfg.tie_embeddings {
            specs.push(("head.weight".into(), vec![v, d]));
        }
        for i in 0..cfg.layers {
            let p = format!("blocks.{i}.");
            for (name, shape) in [
                ("ln1.weight", vec![d]),
                ("ln1.bias", vec![d]),
                ("qkv.weight", vec![3 * d, d]),
                ("qkv.bias", vec![3 * d]),
                ("proj.weight", vec![d, d]),
                ("proj.bias", vec![d]),
                ("ln2.weight", vec![d]),
                ("ln2.bias", vec![d]),
                ("fc.weight", vec![4 * d, d]),
                ("fc.bias", vec![4 * d]),
                ("fc2.weight", vec![d, 4 * d]),
                ("fc2.bias", vec![d]),
            ] {
                specs.push((format!("{p}{name}"), shape));
            }
        }
        // Matrices (rank ≥ 2) first: the optimizer's decayed group is then one prefix.
        specs.sort_by(|a, b| (a.1.len() < 2, &a.0).cmp(&(b.1.len() < 2, &b.0)));
        let mut offset = 0;
        let mut decayed = 0;
        let mut hidden = 0;
        let params: Vec<Param> = specs
            .into_iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let range = offset..offset + n;
                offset += n;
                if shape.len() >= 2 {
                    decayed = offset;
                    if name.starts_with("blocks.") {
                        hidden = offset;
                    }
                }
                Param { name, shape, range }
            })
            .collect();
        let find = |name: &str| -> Range<usize> {
            params
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.range.clone())
                .unwrap_or_else(|| panic!("layout has no {name}"))
        };
        let blocks = (0..cfg.layers)
            .map(|i| {
                let f = |n: &str| find(&format!("blocks.{i}.{n}"));
                BlockParams {
                    ln1_w: f("ln1.weight"),
                    ln1_b: f("ln1.bias"),
                    qkv_w: f("qkv.weight"),
                    qkv_b: f("qkv.bias"),
                    proj_w: f("proj.weight"),
                    proj_b: f("proj.bias"),
                    ln2_w: f("ln2.weight"),
                    ln2_b: f("ln2.bias"),
                    fc_w: f("fc.weight"),
                    fc_b: f("fc.bias"),
                    fc2_w: f("fc2.weight"),
                    fc2_b: f("fc2.bias"),
                }
            })
            .collect();
        let wte = find("wte.weight");
        Layout {
            hidden,
            decayed,
            mult: Multipliers::of(cfg),
            total: offset,
            wpe: find("wpe.weight"),
            blocks,
            ln_f_w: find("ln_f.weight"),
            ln_f_b: find("ln_f.bias"),
            head: if cfg.tie_embeddings {
                wte.clone()
            } else {
                find("head.weight")
            },
            wte,
            params,
        }
    }

    /// The initial parameters for `seed`: N(0, 0.02) matrices (hidden ones scaled by µP),
    /// unit LayerNorm gains, zero biases — value for value what
    /// [`crate::model::init::SeededInit`] gives candle's model.
    pub fn init(&self, seed: u64) -> candle_core::Result<Vec<f32>> {
        let mut flat = vec![0f32; self.total];
        for p in &self.params {
            let init = if p.shape.len() >= 2 {
                let hidden = p.range.end <= self.hidden;
                Init::Randn {
                    mean: 0.0,
                    stdev: if hidden {
                        MATRIX_STDEV * self.mult.hidden_init
                    } else {
                        MATRIX_STDEV
                    },
                }
            } else if p.name.ends_with("ln1.weight")
                || p.name.ends_with("ln2.weight")
                || p.name == "ln_f.weight"
            {
                Init::Const(1.0)
            } else {
                Init::Const(0.0)
            };
            flat[p.range.clone()].copy_from_slice(&seeded_values(
                seed,
                &p.name,
                p.range.len(),
                init,
            )?);
        }
        Ok(flat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::param_counts;

    #[test]
    fn the_table_covers_every_parameter_once() {
        for tie in [false, true] {
            let cfg = GptConfig {
                layers: 3,
                d_model: 16,
                heads: 2,
                context: 8,
                vocab: 20,
                tie_embeddings: tie,
                parametrization: Default::default(),
            };
            let layout = Layout::new(&cfg);
            assert_eq!(layout.total as u64, param_counts(&cfg).total);
            let mut next = 0;
            for p in &layout.params {
                assert_eq!(p.range.start, next, "{}", p.name);
                assert_eq!(p.range.len(), p.shape.iter().product::<usize>());
                assert_eq!(
                    p.range.end <= layout.decayed,
                    p.shape.len() >= 2,
                    "{}",
                    p.name
                );
                assert_eq!(
                    p.range.end <= layout.hidden,
                    p.shape.len() >= 2 && p.name.starts_with("blocks."),
                    "{}",
                    p.name
                );
                next = p.range.end;
            }
            assert_eq!(layout.head == layout.wte, tie);
        }
    }
}
