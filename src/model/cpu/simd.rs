//! Vector width for the engine's element-wise kernels: a default build targets baseline
//! x86-64 (SSE2, 4 lanes), so [`multiversion!`] compiles a kernel again for AVX2 + FMA and
//! AVX-512 and runs the widest the CPU has ([`crate::isa`]); and reductions are written over
//! 16 independent lanes, which the compiler can keep in one vector register — a plain
//! sequential float sum is never vectorised, since that would reorder its additions.

/// Define `fn name(args) -> ret { body }` compiled three times, dispatched at run time.
/// Closures inside the body are separate functions that do not inherit the target features,
/// so the body should be the per-chunk loop, called from inside the parallel closure.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            fn v4($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            fn v3($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            match $crate::isa::detect().kind() {
                // SAFETY: an `Isa` is made only after checking the CPU has its features.
                #[cfg(target_arch = "x86_64")]
                $crate::isa::Kind::Avx512 => unsafe { v4($($arg),*) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                $crate::isa::Kind::Avx2 => unsafe { v3($($arg),*) },
                _ => body($($arg),*),
            }
        }
    };
}
pub(crate) use multiversion;

const LANES: usize = 16;

/// Combine 16 lane totals in a fixed tree order.
#[inline(always)]
fn fold(mut acc: [f32; LANES], op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] = op(acc[i], acc[i + width]);
        }
        width /= 2;
    }
    acc[0]
}

/// Σ f(xᵢ) over 16 lanes (then the remainder), in an order fixed by the length alone.
#[inline(always)]
pub fn sum_map(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += f(c[i]);
        }
    }
    for (i, &v) in rest.iter().enumerate() {
        acc[i] += f(v);
    }
    fold(acc, |a, b| a + b)
}

/// Σ xᵢ.
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    sum_map(x, |v| v)
}

/// Σ xᵢ·yᵢ (equal lengths).
#[inline(always)]
pub fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let full = n / LANES * LANES;
    for (cx, cy) in x[..full]
        .chunks_exact(LANES)
        .zip(y[..full].chunks_exact(LANES))
    {
        for i in 0..LANES {
            acc[i] += cx[i] * cy[i];
        }
    }
    for (i, (&a, &b)) in x[full..].iter().zip(&y[full..]).enumerate() {
        acc[i] += a * b;
    }
    fold(acc, |a, b| a + b)
}

/// max xᵢ (−∞ for an empty slice).
#[inline(always)]
pub fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    for (i, &v) in rest.iter().enumerate() {
        acc[i] = acc[i].max(v);
    }
    fold(acc, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    multiversion! {
        fn scaled_sum(x: &[f32], s: f32) -> f32 {
            sum_map(x, |v| v * s)
        }
    }

    /// On the copy this CPU dispatches to; that every copy gives the same bits is the
    /// engine's golden test (`tests/cli/train_point.rs`), which trains under each
    /// `SCALEBOOK_ISA` the CPU has.
    #[test]
    fn reductions_are_exact_on_integers() {
        for n in [0usize, 1, 15, 16, 17, 100, 1000] {
            let x: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
            let y: Vec<f32> = (0..n).map(|i| (i % 5) as f32).collect();
            let want: f32 = x.iter().sum();
            assert_eq!(sum(&x), want, "n = {n}");
            assert_eq!(
                dot(&x, &y),
                x.iter().zip(&y).map(|(a, b)| a * b).sum::<f32>()
            );
            assert_eq!(max(&x), x.iter().copied().fold(f32::NEG_INFINITY, f32::max));
            assert_eq!(scaled_sum(&x, 2.0), 2.0 * want);
        }
    }
}
