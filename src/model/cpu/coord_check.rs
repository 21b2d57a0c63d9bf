//! The coordinate check of µP (Yang et al. 2022, "Tensor Programs V", §3; the `mup`
//! package's `coord_check`): train a few steps at four widths of one depth and measure how
//! far the last block's output and the logits moved from their initial values, per
//! coordinate. With Adam under the standard parametrisation the change grows with the width
//! (every weight moves by ~lr, and a coordinate sums d of them); under µP it stays flat —
//! the property that lets a learning rate tuned at one width serve the others.

use super::*;
use crate::model::Parametrization;

const WIDTHS: [u64; 4] = [16, 32, 64, 128];
const STEPS: usize = 4;

/// Mean |Δ| per coordinate of the last block's output and of the logits after [`STEPS`]
/// steps at lr 1e-2 on one fixed batch.
fn changes(width: u64, parametrization: Parametrization) -> (f64, f64) {
    let cfg = GptConfig {
        layers: 2,
        d_model: width,
        heads: 2,
        context: 16,
        vocab: 32,
        tie_embeddings: false,
        parametrization,
    };
    let hyper = Hyper {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let mut engine = CpuGpt::new(&cfg, 7, hyper).unwrap();
    let batch = 4;
    let ids: Vec<u32> = (0..batch * 16).map(|i| (i * 11 % 31) as u32).collect();
    let targets: Vec<u32> = (0..batch * 16).map(|i| (i * 7 % 29) as u32).collect();
    let snapshot = |engine: &mut CpuGpt| -> (Vec<f32>, Vec<f32>) {
        engine.forward(&ids, &targets, batch, false).unwrap();
        let buf = engine.buffers.as_ref().unwrap();
        let rc = batch * 16 * width as usize;
        let last = part(&buf.resid, cfg.layers as usize, rc).to_vec();
        (last, buf.logits[..batch * 16 * 32].to_vec())
    };
    let (resid0, logits0) = snapshot(&mut engine);
    for _ in 0..STEPS {
        engine.step(&ids, &targets, batch, 1e-2, 0.0).unwrap();
    }
    let (resid1, logits1) = snapshot(&mut engine);
    let mean_abs_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from((x - y).abs()))
            .sum::<f64>()
            / a.len() as f64
    };
    (
        mean_abs_diff(&resid0, &resid1),
        mean_abs_diff(&logits0, &logits1),
    )
}

#[test]
fn activations_move_alike_at_every_width_under_mup_and_grow_under_standard() {
    let base = Parametrization::Mup { base_width: 16 };
    let standard: Vec<(f64, f64)> = WIDTHS
        .iter()
        .map(|&w| changes(w, Parametrization::Standard))
        .collect();
    let mup: Vec<(f64, f64)> = WIDTHS.iter().map(|&w| changes(w, base)).collect();
    println!("width  standard Δresid Δlogits   µP Δresid Δlogits");
    for (i, w) in WIDTHS.iter().enumerate() {
        println!(
            "{w:>5}  {:>9.4} {:>8.4}  {:>9.4} {:>8.4}",
            standard[i].0, standard[i].1, mup[i].0, mup[i].1
        );
    }
    // At the base width the two parametrisations are one model.
    assert_eq!(standard[0], mup[0]);
    let ratio = |v: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| pick(&v[3]) / pick(&v[0]);
    for (what, pick) in [
        (
            "last block's output",
            (|c: &(f64, f64)| c.0) as fn(&(f64, f64)) -> f64,
        ),
        ("logits", |c: &(f64, f64)| c.1),
    ] {
        let (s, m) = (ratio(&standard, pick), ratio(&mup, pick));
        assert!(
            s > 2.5,
            "standard: {what} moved only {s:.2}× more at width 128 than 16"
        );
        assert!(
            (0.5..=2.0).contains(&m),
            "µP: {what} moved {m:.2}× as much at width 128 as at 16"
        );
    }
}
