//! The engine against candle's autograd: the golden reference.

use candle_core::{Device, Tensor};

use super::*;

/// Every gradient of the engine against candle's autograd on the same weights and batch,
/// under the standard parametrisation and under µP at twice its base width (hidden init,
/// attention scale and logit multiplier all away from 1), untied and tied.
#[test]
fn engine_gradients_match_candles_autograd() {
    use crate::model::Parametrization;
    for (parametrization, tie) in [
        (Parametrization::Standard, false),
        (Parametrization::Mup { base_width: 8 }, false),
        (Parametrization::Mup { base_width: 4 }, true),
    ] {
        let cfg = GptConfig {
            layers: 2,
            d_model: 16,
            heads: 4,
            context: 8,
            vocab: 24,
            tie_embeddings: tie,
            parametrization,
        };
        gradients_match(&cfg);
    }
}

fn gradients_match(cfg: &GptConfig) {
    let cfg = *cfg;
    let mut engine = CpuGpt::new(
        &cfg,
        5,
        Hyper {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.0,
        },
    )
    .unwrap();
    let (model, varmap) = crate::model::gpt::seeded(&cfg, 5);
    let inputs: Vec<u32> = (0..2 * 8).map(|i| (i * 7 % 24) as u32).collect();
    let targets: Vec<u32> = (0..2 * 8).map(|i| (i * 5 % 24) as u32).collect();
    let x = Tensor::from_slice(&inputs, (2, 8), &Device::Cpu).unwrap();
    let y = Tensor::from_slice(&targets, 16, &Device::Cpu).unwrap();
    let want = model.loss(&x, &y).unwrap();
    let grads = want.backward().unwrap();
    let want = f64::from(want.to_scalar::<f32>().unwrap());
    let got = engine.forward(&inputs, &targets, 2, true).unwrap();
    let which = format!("{:?}", cfg.parametrization);
    assert!((got - want).abs() < 1e-5, "{which}: loss {got} vs {want}");
    engine.backward(&inputs, 2);
    for (name, var) in varmap.data().lock().unwrap().iter() {
        let param = engine
            .layout
            .params
            .iter()
            .find(|p| &p.name == name)
            .unwrap();
        let w: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(
            &engine.params[param.range.clone()],
            &w[..],
            "{which}, {name}: initial values"
        );
        let g: Vec<f32> = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let scale = g.iter().fold(0f32, |a, v| a.max(v.abs()));
        for (i, (a, b)) in engine.grads[param.range.clone()].iter().zip(&g).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * scale + 1e-7,
                "{which}, {name}[{i}]: {a} vs {b}"
            );
        }
    }
}
