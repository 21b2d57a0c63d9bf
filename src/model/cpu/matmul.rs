//! Strided f32 matrix products on the `gemm` crate (the kernels candle itself calls, with
//! their AVX-512 micro-kernels): every product of the engine reads its operands in place —
//! transposes are strides, a head's slice of the fused QKV buffer is an offset and a row
//! stride — so no layout copy is ever made.

use gemm::Parallelism;
use rayon::prelude::*;

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
/// each element's sum is the same whatever the split. `examples/gemm_shapes.rs` times every
/// layer product through here.
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
        Threads::Pool => rayon::current_num_threads().min(m / MIN_BAND_ROWS).max(1),
        Threads::One => 1,
    };
    if bands == 1 {
        return product(dst, accumulate, a, b, scale);
    }
    let per = m.div_ceil(bands);
    let mut parts = Vec::with_capacity(bands);
    let ViewMut {
        data,
        offset,
        rows,
        cols,
        rs,
    } = dst;
    let mut rest = &mut data[offset..];
    for r0 in (0..rows).step_by(per) {
        let n_rows = per.min(rows - r0);
        let take = if r0 + n_rows == rows {
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
        parts.push((band, lhs));
    }
    parts
        .into_par_iter()
        .for_each(|(band, lhs)| product(band, accumulate, lhs, b, scale));
}

/// Bands thinner than this are not worth a thread.
const MIN_BAND_ROWS: usize = 64;

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

    #[test]
    fn strided_products_match_the_naive_loop() {
        let (m, k, n) = (7, 5, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
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
