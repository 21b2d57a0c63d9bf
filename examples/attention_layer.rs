//! Milliseconds per layer of the engine's causal attention, forward and backward, at one
//! model shape (context 256 × batch 16, the `bench train` batch), on the rayon pool.
//!
//!     cargo run --release --example attention_layer -- 512 8 [threads] [reps]
//!
//! (d_model, heads; threads default 2, reps default 20). Prints the best and the mean of
//! the reps. To compare two versions of `attention.rs`, build this on each and run the two
//! binaries alternately: the machine's speed moves between minutes.

use std::time::Instant;

use scalebook::model::cpu::attention::{self, Dims};

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .map_or(default, |s| s.parse().expect("a positive integer"))
    };
    let (c, heads, threads, reps) = (arg(1, 512), arg(2, 8), arg(3, 2), arg(4, 20).max(1));
    // SAFETY: no thread has started yet (only the arguments were read).
    unsafe { scalebook::sys::set_threads(threads) };
    let (t, batch) = (256, 16);
    let dims = Dims {
        batch,
        t,
        c,
        heads,
        scale: scalebook::model::cpu::attention::scale(c / heads, 1.0),
    };
    let qkv: Vec<f32> = (0..batch * t * 3 * c)
        .map(|i| ((i % 17) as f32 - 8.0) * 0.01)
        .collect();
    let mut y = vec![0f32; batch * t * c];
    let mut att = vec![0f32; batch * heads * t * t];
    let mut dqkv = vec![0f32; batch * t * 3 * c];
    let mut scratch = vec![0f32; batch * t * t];
    let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let start = Instant::now();
        attention::forward(&mut y, &mut att, &qkv, dims);
        fwd.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        attention::backward(&mut dqkv, &mut scratch, &y, &att, &qkv, dims);
        bwd.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let stats = |v: &[f64]| {
        let best = v.iter().copied().fold(f64::INFINITY, f64::min);
        (best, v.iter().sum::<f64>() / v.len() as f64)
    };
    let ((fb, fm), (bb, bm)) = (stats(&fwd), stats(&bwd));
    println!(
        "d_model {c}, {heads} heads, T {t}, batch {batch}, {threads} threads, {reps} reps: \
         forward best {fb:.2} mean {fm:.2} ms, backward best {bb:.2} mean {bm:.2} ms per layer"
    );
}
