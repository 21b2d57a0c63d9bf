//! One optimizer step — forward, backward, global-norm clipping, AdamW — shared by the trainer
//! and `scalebook bench train`, so the benchmark measures exactly what studies run. The step
//! runs on the CPU engine ([`crate::model::cpu`]); candle's model is its reference (tests).

use crate::model::GptConfig;
use crate::model::cpu::CpuGpt;
use crate::model::cpu::adamw::Hyper;
use crate::study::TrainSpec;

/// A model with its optimizer state.
pub struct Stepper {
    engine: CpuGpt,
    grad_clip: f64,
}

impl Stepper {
    /// Build the model with seeded init and AdamW (β1, β2, weight decay on matrices and
    /// embeddings only, from `train`).
    pub fn new(cfg: &GptConfig, train: &TrainSpec, seed: u64) -> candle_core::Result<Self> {
        let hyper = Hyper {
            beta1: train.beta1,
            beta2: train.beta2,
            eps: 1e-8,
            weight_decay: train.weight_decay,
        };
        Ok(Stepper {
            engine: CpuGpt::new(cfg, seed, hyper)?,
            grad_clip: train.grad_clip,
        })
    }

    /// Parameters in the built model.
    pub fn parameter_count(&self) -> usize {
        self.engine.parameter_count()
    }

    /// The model and optimizer state (to snapshot a trunk).
    pub fn state(&self) -> crate::model::cpu::EngineState<'_> {
        self.engine.state()
    }

    /// Continue from a saved state; `false` if it does not fit this model.
    pub fn restore(&mut self, state: &crate::model::cpu::EngineState) -> bool {
        self.engine.restore(state)
    }

    /// Train on `batch` sequences of inputs and their next-token targets at learning rate
    /// `lr`; returns the loss before the update. A non-finite loss is returned without
    /// updating.
    pub fn step(
        &mut self,
        inputs: &[u32],
        targets: &[u32],
        batch: usize,
        lr: f64,
    ) -> candle_core::Result<f64> {
        self.engine.step(inputs, targets, batch, lr, self.grad_clip)
    }

    /// Mean loss (nats/token) without training.
    pub fn loss(
        &mut self,
        inputs: &[u32],
        targets: &[u32],
        batch: usize,
    ) -> candle_core::Result<f64> {
        self.engine.loss(inputs, targets, batch)
    }

    /// [`Self::loss`] and each position's most likely next token with its probability.
    pub fn loss_and_top(
        &mut self,
        inputs: &[u32],
        targets: &[u32],
        batch: usize,
    ) -> candle_core::Result<(f64, Vec<crate::model::cpu::kernels::Top>)> {
        self.engine.loss_and_top(inputs, targets, batch)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};

    use super::*;
    use crate::model::gpt::{self, Gpt};
    use crate::rng::SplitMix64;
    use crate::study::Schedule;

    /// The same step on candle's model and autograd with candle-nn's AdamW: the reference.
    struct Reference {
        model: Gpt,
        vars: Vec<(String, Var)>,
        decayed: AdamW,
        plain: AdamW,
        grad_clip: f64,
    }

    impl Reference {
        fn new(cfg: &GptConfig, train: &TrainSpec, seed: u64) -> Self {
            let (model, varmap) = gpt::seeded(cfg, seed);
            let mut vars: Vec<(String, Var)> = varmap
                .data()
                .lock()
                .unwrap()
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            let (matrices, vectors): (Vec<Var>, Vec<Var>) = vars
                .iter()
                .map(|(_, v)| v.clone())
                .partition(|v| v.rank() >= 2);
            let params = |weight_decay: f64| ParamsAdamW {
                lr: train.lr,
                beta1: train.beta1,
                beta2: train.beta2,
                eps: 1e-8,
                weight_decay,
            };
            Reference {
                model,
                decayed: AdamW::new(matrices, params(train.weight_decay)).unwrap(),
                plain: AdamW::new(vectors, params(0.0)).unwrap(),
                vars,
                grad_clip: train.grad_clip,
            }
        }

        fn step(&mut self, x: &Tensor, y: &Tensor, lr: f64) -> f64 {
            let loss_t = self.model.loss(x, y).unwrap();
            let loss = f64::from(loss_t.to_scalar::<f32>().unwrap());
            let mut grads = loss_t.backward().unwrap();
            let mut norm_sq = 0.0f64;
            for (_, var) in &self.vars {
                let g = grads.get(var.as_tensor()).unwrap();
                norm_sq += f64::from(
                    g.sqr()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap(),
                );
            }
            let norm = norm_sq.sqrt();
            if norm > self.grad_clip {
                let scale = self.grad_clip / (norm + 1e-6);
                for (_, var) in &self.vars {
                    let g = grads.remove(var.as_tensor()).unwrap();
                    grads.insert(var.as_tensor(), (g * scale).unwrap());
                }
            }
            self.decayed.set_learning_rate(lr);
            self.plain.set_learning_rate(lr);
            self.decayed.step(&grads).unwrap();
            self.plain.step(&grads).unwrap();
            loss
        }
    }

    fn train_spec() -> TrainSpec {
        TrainSpec {
            batch: 4,
            lr: 3e-3,
            schedule: Schedule::Constant,
            warmup: 0.0,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            grad_clip: 1.0,
            eval_every: 1,
            eval_tokens: 16,
        }
    }

    /// The engine changes no mathematics: 100 steps of it and of candle's model with
    /// candle-nn's AdamW give the same loss at every step to within 1e-4 relative,
    /// tied and untied, with a context spanning two attention row blocks.
    #[test]
    fn engine_keeps_candles_loss_curve() {
        for (tie, context) in [(false, 16usize), (true, 72)] {
            let cfg = GptConfig {
                layers: 2,
                d_model: 32,
                heads: 2,
                context: context as u64,
                vocab: 64,
                tie_embeddings: tie,
                parametrization: Default::default(),
            };
            let train = train_spec();
            let mut engine = Stepper::new(&cfg, &train, 7).unwrap();
            let mut reference = Reference::new(&cfg, &train, 7);
            let mut rng = SplitMix64::new(3);
            let mut worst: f64 = 0.0;
            let mut losses = Vec::new();
            for _ in 0..100 {
                // A learnable stream: each token is the previous one plus 1 or 2 (mod 64).
                let (mut inputs, mut targets) = (Vec::new(), Vec::new());
                for _ in 0..4 {
                    let mut tok = rng.below(64) as u32;
                    for _ in 0..context {
                        inputs.push(tok);
                        tok = (tok + 1 + rng.below(2) as u32) % 64;
                        targets.push(tok);
                    }
                }
                let x = Tensor::from_slice(&inputs, (4, context), &Device::Cpu).unwrap();
                let y = Tensor::from_slice(&targets, 4 * context, &Device::Cpu).unwrap();
                let a = engine.step(&inputs, &targets, 4, 3e-3).unwrap();
                let b = reference.step(&x, &y, 3e-3);
                worst = worst.max((a / b - 1.0).abs());
                losses.push(a);
            }
            assert!(worst < 1e-4, "tie {tie}: loss curves differ by {worst:e}");
            // It learned (so the comparison covers real updates, not a flat curve).
            assert!(
                losses[99] < 0.8 * losses[0],
                "{} → {}",
                losses[0],
                losses[99]
            );
        }
    }
}
