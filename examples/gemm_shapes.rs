//! GFLOP/s of each layer product of one training step, through the engine's own `matmul`
//! (row bands over the rayon pool, operand layouts exactly as the forward and backward read
//! them), timed alternately in one process so machine noise hits every shape alike.
//!
//!     cargo run --release --example gemm_shapes -- 512 [threads] [rounds]
//!
//! (d_model, default 512; threads, default 2; rounds, default 5; context 256 × batch 16 =
//! 4096 rows). Prints the best round per shape.

use std::time::Instant;

use scalebook::model::cpu::matmul::{Threads, View, ViewMut, matmul};

/// (label, m, n, k, lhs transposed, rhs transposed, accumulate) as the engine calls them.
fn shapes(c: usize, rows: usize) -> Vec<(&'static str, usize, usize, usize, bool, bool, bool)> {
    vec![
        ("fwd qkv    x·Wᵀ", rows, 3 * c, c, false, true, true),
        ("fwd proj   x·Wᵀ", rows, c, c, false, true, true),
        ("fwd fc     x·Wᵀ", rows, 4 * c, c, false, true, true),
        ("fwd fc2    x·Wᵀ", rows, c, 4 * c, false, true, true),
        ("bwd dx fc2 dy·W", rows, 4 * c, c, false, false, false),
        ("bwd dx fc  dy·W", rows, c, 4 * c, false, false, false),
        ("bwd dx qkv dy·W", rows, c, 3 * c, false, false, false),
        ("bwd dW fc2 dyᵀ·x", c, 4 * c, rows, true, false, false),
        ("bwd dW fc  dyᵀ·x", 4 * c, c, rows, true, false, false),
        ("bwd dW qkv dyᵀ·x", 3 * c, c, rows, true, false, false),
    ]
}

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .map_or(default, |s| s.parse().expect("a positive integer"))
    };
    let (c, threads, rounds) = (arg(1, 512), arg(2, 2), arg(3, 5));
    // SAFETY: no thread has started yet (only the arguments were read).
    unsafe { scalebook::sys::set_threads(threads) };
    let rows = 16 * 256;
    let list = shapes(c, rows);
    let mut best = vec![f64::INFINITY; list.len()];
    let operand = |n: usize| -> Vec<f32> { (0..n).map(|i| (i % 13) as f32 * 0.01).collect() };
    for _ in 0..rounds {
        for (i, &(_, m, n, k, lt, rt, acc)) in list.iter().enumerate() {
            let (a, b) = (operand(m * k), operand(k * n));
            let mut dst = vec![0f32; m * n];
            let a = if lt {
                View::rows(&a, k, m).t()
            } else {
                View::rows(&a, m, k)
            };
            let b = if rt {
                View::rows(&b, n, k).t()
            } else {
                View::rows(&b, k, n)
            };
            let start = Instant::now();
            matmul(ViewMut::rows(&mut dst, m, n), acc, a, b, 1.0, Threads::Pool);
            best[i] = best[i].min(start.elapsed().as_secs_f64());
        }
    }
    println!("d_model {c}, {rows} rows, {threads} threads, best of {rounds} alternated rounds");
    for ((label, m, n, k, ..), t) in list.iter().zip(&best) {
        let gflops = 2.0 * (m * n * k) as f64 / t / 1e9;
        println!("{label:18} m {m:5} n {n:5} k {k:5}  {gflops:6.1} GFLOP/s");
    }
}
