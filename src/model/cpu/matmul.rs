//! Strided f32 matrix products on the `gemm` crate (the kernels candle itself calls, with
//! their AVX-512 micro-kernels): every product of the engine reads its operands in place —
//! transposes are strides, a head's slice of the fused QKV buffer is an offset and a row
//! stride — so no layout copy is ever made.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use gemm::Parallelism;

use super::profile::{self, Section};

/// A read-only matrix view: element (i, j) is `data[offset + i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    data: &'a [f32],
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// A row-major `rows × cols` matrix starting at `data[0]`.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, 0, rows, cols, cols, 1)
    }

    /// A general view; panics if any element lies outside `data` (a programming error).
    pub fn strided(
        data: &'a [f32],
        offset: usize,
        rows: usize,
        cols: usize,
        rs: usize,
        cs: usize,
    ) -> Self {
        if rows > 0 && cols > 0 {
            let last = offset + (rows - 1) * rs + (cols - 1) * cs;
            assert!(last < data.len(), "matrix view out of bounds");
        }
        View {
            data,
            offset,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// The transpose (a stride swap, no copy).
    pub fn t(self) -> Self {
        View {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    fn ptr(&self) -> *const f32 {
        // In bounds: checked at construction (or empty, when the pointer is not read).
        self.data.as_ptr().wrapping_add(self.offset)
    }
}

/// A writable matrix view with the same addressing as [`View`].
pub struct ViewMut<'a> {
    data: &'a mut [f32],
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
}

impl<'a> ViewMut<'a> {
    /// A row-major `rows × cols` matrix starting at `data[0]`.
    pub fn rows(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, 0, rows, cols, cols)
    }

    /// Rows of `cols` contiguous elements, `rs` apart, from `offset`.
    pub fn strided(
        data: &'a mut [f32],
        offset: usize,
        rows: usize,
        cols: usize,
        rs: usize,
    ) -> Self {
        if rows > 0 && cols > 0 {
            assert!(
                offset + (rows - 1) * rs + cols <= data.len(),
                "matrix view out of bounds"
            );
        }
        ViewMut {
            data,
            offset,
            rows,
            cols,
            rs,
        }
    }
}

/// How a product is spread over threads: the whole pool for the big layer products, one
/// thread inside tasks that are themselves parallel (attention, one task per sequence).
#[derive(Clone, Copy)]
pub enum Threads {
    Pool,
    One,
}

/// dst ← a·b·scale, or dst ← dst + a·b·scale when `accumulate`.
///
/// With [`Threads::Pool`] the output rows are split into one contiguous band per thread,
/// each a single-threaded `gemm` call: for the tall products of training (B·T rows) this
/// beat `gemm`'s own splitting by 3–5 % at S2 (three alternated `bench train` pairs), and
/// each element's sum is the same whatever the split. The bands are sized in proportion to
/// each thread's recent speed (`speed_weights`): on a shared machine the two cores of a
/// 2-core VM ran at different speeds for stretches of tens of products, so equal bands left
/// the faster thread waiting (measured at S4: the two equal bands' finish times differed by
/// 17 % of the product's time on average, 9 % of the threads' time idle).
/// `examples/gemm_shapes.rs` times every layer product through here.
pub fn matmul(dst: ViewMut, accumulate: bool, a: View, b: View, scale: f32, threads: Threads) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    assert_eq!(
        (dst.rows, dst.cols),
        (a.rows, b.cols),
        "output shape differs"
    );
    let m = dst.rows;
    let _timer =
        matches!(threads, Threads::Pool).then(|| profile::Timer::new(Section::LayerProducts));
    let bands = match threads {
        Threads::Pool => rayon::current_num_threads()
            .min(MAX_THREADS)
            .min(m / MIN_BAND_ROWS)
            .max(1),
        Threads::One => 1,
    };
    if bands == 1 {
        return product(dst, accumulate, a, b, scale);
    }
    // Speed-weighted bands only where every band's `gemm` call takes the same code path
    // whatever its height: `gemm` has a separate path, with its own depth blocking (so
    // other rounding), for outputs at most 64 × 64. A band wider than 64 columns can never
    // take it; narrower products keep the fixed equal split they always had.
    let bounds = if dst.cols > SMALL_GEMM {
        weighted_bounds(m, &speed_weights(bands))
    } else {
        let per = m.div_ceil(bands);
        (0..=bands).map(|i| (i * per).min(m)).collect()
    };
    let times = banded(dst, accumulate, a, b, scale, &bounds);
    if times.iter().flatten().all(|&t| t >= MIN_TIMED_SECONDS) {
        let rates: Vec<f64> = bounds
            .windows(2)
            .zip(&times)
            .map(|(w, t)| t.map_or(0.0, |t| (w[1] - w[0]) as f64 / t.max(1e-9)))
            .collect();
        record_speeds(&rates);
    }
}

/// The product in row bands [bounds[i], bounds[i + 1]), band i on pool thread i (one
/// single-threaded `gemm` call each); returns each thread's seconds (None: no band).
fn banded(
    dst: ViewMut,
    accumulate: bool,
    a: View,
    b: View,
    scale: f32,
    bounds: &[usize],
) -> Vec<Option<f64>> {
    let ViewMut {
        data,
        offset,
        rows,
        cols,
        rs,
    } = dst;
    let mut parts = Vec::with_capacity(bounds.len() - 1);
    let mut rest = &mut data[offset..];
    for w in bounds.windows(2) {
        let (r0, n_rows) = (w[0], w[1] - w[0]);
        let take = if w[1] == rows {
            rest.len()
        } else {
            n_rows * rs
        };
        let (band, tail) = std::mem::take(&mut rest).split_at_mut(take);
        rest = tail;
        let band = ViewMut::strided(band, 0, n_rows, cols, rs);
        let lhs = View {
            offset: a.offset + r0 * a.rs,
            rows: n_rows,
            ..a
        };
        parts.push(Mutex::new(Some((band, lhs))));
    }
    assert!(
        parts.len() <= rayon::current_num_threads(),
        "more bands than threads"
    );
    // Thread i always takes band i, so each band's time measures its own thread's speed.
    rayon::broadcast(|ctx| {
        let part = parts
            .get(ctx.index())?
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        part.map(|(band, lhs)| {
            let start = Instant::now();
            product(band, accumulate, lhs, b, scale);
            start.elapsed().as_secs_f64()
        })
    })
}

/// Bands thinner than this are not worth a thread.
const MIN_BAND_ROWS: usize = 64;
/// `gemm`'s small-product path: both sides at most this.
const SMALL_GEMM: usize = 64;
/// Band heights are multiples of this (the micro-kernel's row step is 6 or 16 wide).
const ROW_GRAIN: usize = 16;
/// Threads whose speed is tracked; a product uses at most this many bands.
const MAX_THREADS: usize = 64;
/// Products shorter than this per band say too little about a thread's speed.
const MIN_TIMED_SECONDS: f64 = 200e-6;
/// Weight of the newest product in a thread's speed (an exponential moving average: the
/// cores' speeds drift over tens of products, measured).
const SPEED_SMOOTHING: f64 = 0.3;

/// Each pool thread's relative speed (f64 bits; 0 = never measured): rows per second on its
/// band ÷ the mean over the bands of the same product, smoothed over products.
static SPEEDS: [AtomicU64; MAX_THREADS] = [const { AtomicU64::new(0) }; MAX_THREADS];

/// One thread's relative speed (1 where not measured yet).
fn speed(slot: &AtomicU64) -> f64 {
    match f64::from_bits(slot.load(Ordering::Relaxed)) {
        v if v > 0.0 && v.is_finite() => v,
        _ => 1.0,
    }
}

/// The relative speeds of threads 0..bands.
fn speed_weights(bands: usize) -> Vec<f64> {
    SPEEDS[..bands].iter().map(speed).collect()
}

/// Fold one product's per-band rates (rows per second, thread i = band i) into the speeds.
fn record_speeds(rates: &[f64]) {
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    if !(mean > 0.0 && mean.is_finite()) {
        return;
    }
    for (slot, &rate) in SPEEDS.iter().zip(rates) {
        let new = (1.0 - SPEED_SMOOTHING) * speed(slot) + SPEED_SMOOTHING * (rate / mean);
        slot.store(new.clamp(0.1, 10.0).to_bits(), Ordering::Relaxed);
    }
}

/// Row boundaries 0 = b₀ < b₁ < … < b_n = m splitting m rows in proportion to `weights`,
/// on [`ROW_GRAIN`] steps, every band at least [`MIN_BAND_ROWS`] rows (the caller ensures
/// m ≥ n · MIN_BAND_ROWS).
fn weighted_bounds(m: usize, weights: &[f64]) -> Vec<usize> {
    let n = weights.len();
    let total: f64 = weights.iter().sum();
    let mut bounds = vec![0; n + 1];
    let mut cumulative = 0.0;
    for i in 1..n {
        cumulative += weights[i - 1];
        let ideal = (m as f64 * cumulative / total / ROW_GRAIN as f64).round() as usize * ROW_GRAIN;
        // Room for this band's minimum before, and the remaining bands' minimums after.
        let lo = bounds[i - 1] + MIN_BAND_ROWS;
        let hi = m - (n - i) * MIN_BAND_ROWS;
        bounds[i] = ideal.clamp(lo, hi);
    }
    bounds[n] = m;
    bounds
}

/// One single-threaded `gemm` call.
fn product(dst: ViewMut, accumulate: bool, a: View, b: View, scale: f32) {
    let (m, n, k) = (dst.rows, dst.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                let start = dst.offset + r * dst.rs;
                dst.data[start..start + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: every view was bounds-checked at construction for exactly these shapes and
    // strides; `dst` is borrowed mutably, so no operand aliases it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr().add(dst.offset),
            1,
            dst.rs as isize,
            accumulate,
            a.ptr(),
            a.cs as isize,
            a.rs as isize,
            b.ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    /// Row-major a (m × k) and b (k × n) with a spread of values.
    fn operands(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
        let a = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        (a, b)
    }

    /// Speed-weighted bands: proportional, on the row grain, never under the minimum.
    #[test]
    fn bands_follow_the_weights_within_their_limits() {
        assert_eq!(weighted_bounds(4096, &[1.0, 1.0]), vec![0, 2048, 4096]);
        assert_eq!(weighted_bounds(4096, &[1.0, 3.0]), vec![0, 1024, 4096]);
        // 1000 · 0.7 = 700 → 704 on the grain of 16.
        assert_eq!(weighted_bounds(1000, &[0.7, 0.3]), vec![0, 704, 1000]);
        // A thread ten times slower still gets its minimum band.
        assert_eq!(weighted_bounds(200, &[10.0, 1.0]), vec![0, 136, 200]);
        assert_eq!(weighted_bounds(128, &[1.0, 10.0]), vec![0, 64, 128]);
        let b = weighted_bounds(1000, &[1.0, 2.0, 0.5]);
        assert!(b.windows(2).all(|w| w[1] - w[0] >= MIN_BAND_ROWS), "{b:?}");
        assert_eq!((b[0], b[3]), (0, 1000));
    }

    /// However the rows are split, every element is the same `gemm` sum to the last bit,
    /// so the timing-dependent split cannot change a training run (the product is wider
    /// and deeper than `gemm`'s small-product limits, as the weighted split requires).
    #[test]
    fn every_split_gives_the_same_bits() {
        let (m, k, n) = (300, 700, 80);
        let (a, b) = operands(m, k, n);
        let mut whole = vec![0f32; m * n];
        product(
            ViewMut::rows(&mut whole, m, n),
            false,
            View::rows(&a, m, k),
            View::rows(&b, k, n),
            0.5,
        );
        // The global pool has one thread per core: on the 2-core CI machine both splits run.
        let threads = rayon::current_num_threads();
        for bounds in [
            vec![0, 64, 300],
            vec![0, 150, 300],
            vec![0, 236, 300],
            vec![0, 300],
        ] {
            if bounds.len() - 1 > threads {
                continue;
            }
            let mut split = vec![f32::NAN; m * n];
            let times = banded(
                ViewMut::rows(&mut split, m, n),
                false,
                View::rows(&a, m, k),
                View::rows(&b, k, n),
                0.5,
                &bounds,
            );
            assert_eq!(times.iter().flatten().count(), bounds.len() - 1);
            assert!(
                split
                    .iter()
                    .zip(&whole)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "split {bounds:?} changed the bits"
            );
        }
    }

    #[test]
    fn strided_products_match_the_naive_loop() {
        let (m, k, n) = (7, 5, 3);
        let (a, b) = operands(m, k, n);
        let want = naive(&a, &b, m, k, n);
        // Plain.
        let mut c = vec![0f32; m * n];
        matmul(
            ViewMut::rows(&mut c, m, n),
            false,
            View::rows(&a, m, k),
            View::rows(&b, k, n),
            1.0,
            Threads::Pool,
        );
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-5);
        }
        // bᵀ stored as (n × k) and read transposed; accumulate with a scale.
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        matmul(
            ViewMut::rows(&mut c, m, n),
            true,
            View::rows(&a, m, k),
            View::rows(&bt, n, k).t(),
            2.0,
            Threads::One,
        );
        for (x, y) in c.iter().zip(&want) {
            assert!((x - 3.0 * y).abs() < 1e-4);
        }
        // Into every other row of a wider buffer, at a column offset.
        let mut wide = vec![9f32; 2 * m * (n + 2)];
        matmul(
            ViewMut::strided(&mut wide, 1, m, n, 2 * (n + 2)),
            false,
            View::rows(&a, m, k),
            View::rows(&b, k, n),
            1.0,
            Threads::Pool,
        );
        for i in 0..m {
            for j in 0..n {
                assert!((wide[1 + i * 2 * (n + 2) + j] - want[i * n + j]).abs() < 1e-5);
            }
            assert_eq!(wide[i * 2 * (n + 2)], 9.0);
        }
    }
}
