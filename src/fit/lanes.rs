//! The approach-3 objective evaluated [`LANES`] points at a time, branch-free, so the compiler
//! turns each step into SIMD instructions; with AVX2/AVX-512 available at run time the same
//! code is compiled for them and picked by [`objective`].
//!
//! libm's `exp`/`ln` are opaque calls the vectoriser cannot widen, so this module carries
//! its own: Cody–Waite range reduction with a degree-13 Taylor polynomial for exp (error
//! below 4e-18 relative before rounding on |r| ≤ ln2/2), and ln(s) for s ∈ [1, 3] (the only
//! range the log-sum-exp needs) as k·ln2 + 2·atanh((m−1)/(m+1)) with m ∈ [1/√2, √2] and 11
//! terms of the atanh series (|error| < 2e-17); polynomials by Estrin's scheme with fused
//! multiply-adds, and one division per point shared by the atanh argument and the softmax
//! weights. A fused multiply-add is exactly rounded wherever it runs (in hardware on
//! AVX2/AVX-512, through libm's `fma` on the baseline path), so every instruction set gives
//! bit-identical results; each lane accumulates its own sums, added in a fixed order at the
//! end.

/// Points per chunk: each lane accumulates separately, so 16 f64 lanes are two AVX-512 or four
/// AVX2 registers of independent sums, enough to keep the FMA units busy.
pub const LANES: usize = 16;

/// ln 2 split as fdlibm does: the high part has trailing zero bits so k·LN2_HI is exact.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
const LOG2E: f64 = std::f64::consts::LOG2_E;
/// 1.5·2⁵²: adding it rounds to an integer held in the low mantissa bits.
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;

/// e^x for x ≤ 0 (inputs below −708 return e^−708, far below anything that matters next to
/// the 1 the log-sum-exp always adds).
#[inline(always)]
fn exp_nonpositive(x: f64) -> f64 {
    let x = if x < -708.0 { -708.0 } else { x };
    let shifted = x.mul_add(LOG2E, ROUND_MAGIC);
    let k = shifted - ROUND_MAGIC;
    let k_int = shifted.to_bits().wrapping_sub(ROUND_MAGIC.to_bits()) as i64;
    let r = (-k).mul_add(LN2_LO, (-k).mul_add(LN2_HI, x));
    // Taylor series of e^r to r¹³, by Estrin's scheme (pairs, then pairs of pairs): a
    // quarter of Horner's dependency chain, which is what bounds this loop.
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let q0 = 1.0 + r;
    let q1 = r.mul_add(1.0 / 6.0, 1.0 / 2.0);
    let q2 = r.mul_add(1.0 / 120.0, 1.0 / 24.0);
    let q3 = r.mul_add(1.0 / 5_040.0, 1.0 / 720.0);
    let q4 = r.mul_add(1.0 / 362_880.0, 1.0 / 40_320.0);
    let q5 = r.mul_add(1.0 / 39_916_800.0, 1.0 / 3_628_800.0);
    let q6 = r.mul_add(1.0 / 6_227_020_800.0, 1.0 / 479_001_600.0);
    let s0 = q1.mul_add(r2, q0);
    let s1 = q3.mul_add(r2, q2);
    let s2 = q5.mul_add(r2, q4);
    let u0 = s1.mul_add(r4, s0);
    let u1 = q6.mul_add(r4, s2);
    let p = u1.mul_add(r8, u0);
    let scale = f64::from_bits((k_int.wrapping_add(1023) as u64) << 52);
    p * scale
}

/// (ln s, 1/s) for s ∈ [1, 3], with one division for both (division is the slowest vector
/// instruction here).
#[inline(always)]
fn ln_and_recip_1_to_3(s: f64) -> (f64, f64) {
    const SQRT2: f64 = std::f64::consts::SQRT_2;
    let (m, k): (f64, f64) = if s <= SQRT2 {
        (s, 0.0)
    } else if s <= 2.0 * SQRT2 {
        (s * 0.5, 1.0)
    } else {
        (s * 0.25, 2.0)
    };
    // z = (m − 1)/(m + 1) and 1/s from the one reciprocal 1/((m + 1)·s).
    let inv = 1.0 / ((m + 1.0) * s);
    let z = (m - 1.0) * s * inv;
    let recip = (m + 1.0) * inv;
    // atanh(z) = z·(1 + z²/3 + z⁴/5 + … + z²⁰/21), by Estrin's scheme in y = z².
    let y = z * z;
    let y2 = y * y;
    let y4 = y2 * y2;
    let y8 = y4 * y4;
    let q0 = y.mul_add(1.0 / 3.0, 1.0);
    let q1 = y.mul_add(1.0 / 7.0, 1.0 / 5.0);
    let q2 = y.mul_add(1.0 / 11.0, 1.0 / 9.0);
    let q3 = y.mul_add(1.0 / 15.0, 1.0 / 13.0);
    let q4 = y.mul_add(1.0 / 19.0, 1.0 / 17.0);
    let s0 = q1.mul_add(y2, q0);
    let s1 = q3.mul_add(y2, q2);
    let s2 = y2.mul_add(1.0 / 21.0, q4);
    let p = s2.mul_add(y8, s1.mul_add(y4, s0));
    (k.mul_add(LN2_LO, k.mul_add(LN2_HI, 2.0 * z * p)), recip)
}

/// Points laid out in chunks of [`LANES`], padded with zero-weight points.
#[derive(Debug, Clone)]
pub struct Chunked {
    pub ln_n: Vec<[f64; LANES]>,
    pub ln_d: Vec<[f64; LANES]>,
    pub ln_l: Vec<[f64; LANES]>,
    /// 1 for real points, 0 for padding.
    pub weight: Vec<[f64; LANES]>,
}

impl Chunked {
    pub fn new(ln_n: &[f64], ln_d: &[f64], ln_l: &[f64]) -> Self {
        let chunks = ln_l.len().div_ceil(LANES);
        let mut out = Chunked {
            ln_n: vec![[0.0; LANES]; chunks],
            ln_d: vec![[0.0; LANES]; chunks],
            ln_l: vec![[0.0; LANES]; chunks],
            weight: vec![[0.0; LANES]; chunks],
        };
        for i in 0..ln_l.len() {
            let (c, j) = (i / LANES, i % LANES);
            out.ln_n[c][j] = ln_n[i];
            out.ln_d[c][j] = ln_d[i];
            out.ln_l[c][j] = ln_l[i];
            out.weight[c][j] = 1.0;
        }
        out
    }
}

/// Σ Huber_δ(ln L̂ − ln L) and its gradient in θ = (a, b, e, α, β), with
/// ln L̂ = LSE(a − α ln N, b − β ln D, e).
#[inline(always)]
fn objective_body(theta: &[f64; 5], data: &Chunked, delta: f64) -> (f64, [f64; 5]) {
    let [a, b, e, alpha, beta] = *theta;
    let mut value = [0.0; LANES];
    let mut g = [[0.0; LANES]; 5];
    for c in 0..data.ln_l.len() {
        let (ln_n, ln_d, ln_l, w) = (&data.ln_n[c], &data.ln_d[c], &data.ln_l[c], &data.weight[c]);
        for j in 0..LANES {
            let t1 = a - alpha * ln_n[j];
            let t2 = b - beta * ln_d[j];
            let t3 = e;
            // The largest term's exp(0) is exactly 1: only the other two need an exp. Which
            // term is largest is a per-lane select, not a branch.
            let first_max = t1 >= t2 && t1 >= t3;
            let second_max = !first_max && t2 >= t3;
            let third_max = !first_max && !second_max;
            let m = if first_max {
                t1
            } else if second_max {
                t2
            } else {
                t3
            };
            let p = if first_max { t2 } else { t1 };
            let q = if third_max { t2 } else { t3 };
            let ep = exp_nonpositive(p - m);
            let eq = exp_nonpositive(q - m);
            let x1 = if first_max { 1.0 } else { ep };
            let x2 = if first_max {
                ep
            } else if second_max {
                1.0
            } else {
                eq
            };
            let x3 = if third_max { 1.0 } else { eq };
            let sum = x1 + x2 + x3;
            let (ln_sum, inv_sum) = ln_and_recip_1_to_3(sum);
            let r = m + ln_sum - ln_l[j];
            // Huber (1964): quadratic within δ, linear outside. Its derivative is r clamped
            // to [−δ, δ], and Huber(r) = dh·(r − dh/2) in both regions. Padding lanes clamp
            // to [0, 0] and add nothing.
            let bound = delta * w[j];
            let dh = if r > bound {
                bound
            } else if r < -bound {
                -bound
            } else {
                r
            };
            let h = dh * (r - 0.5 * dh);
            let scale = dh * inv_sum;
            value[j] += h;
            let (w1, w2, w3) = (scale * x1, scale * x2, scale * x3);
            g[0][j] += w1;
            g[1][j] += w2;
            g[2][j] += w3;
            g[3][j] -= w1 * ln_n[j];
            g[4][j] -= w2 * ln_d[j];
        }
    }
    let total = |v: &[f64; LANES]| v.iter().fold(0.0, |s, x| s + x);
    (
        total(&value),
        [
            total(&g[0]),
            total(&g[1]),
            total(&g[2]),
            total(&g[3]),
            total(&g[4]),
        ],
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,fma")]
fn objective_avx512(theta: &[f64; 5], data: &Chunked, delta: f64) -> (f64, [f64; 5]) {
    objective_body(theta, data, delta)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn objective_avx2(theta: &[f64; 5], data: &Chunked, delta: f64) -> (f64, [f64; 5]) {
    objective_body(theta, data, delta)
}

use crate::isa::{Isa, Kind};

/// The objective on the given instruction set (all give the same bits).
pub fn objective(isa: Isa, theta: &[f64; 5], data: &Chunked, delta: f64) -> (f64, [f64; 5]) {
    match isa.kind() {
        // SAFETY: an `Isa` exists only for features the CPU has (see `crate::isa`).
        #[cfg(target_arch = "x86_64")]
        Kind::Avx512 => unsafe { objective_avx512(theta, data, delta) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Kind::Avx2 => unsafe { objective_avx2(theta, data, delta) },
        _ => objective_body(theta, data, delta),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_ln_match_libm_to_a_few_ulps() {
        let mut worst: f64 = 0.0;
        for i in 0..=100_000 {
            let x = -40.0 * i as f64 / 100_000.0;
            let rel = (exp_nonpositive(x) / x.exp() - 1.0).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 1e-15, "exp off by {worst:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1e300) > 0.0 && exp_nonpositive(-1e300) < 1e-300);
        let mut worst: f64 = 0.0;
        for i in 0..=100_000 {
            let s = 1.0 + 2.0 * i as f64 / 100_000.0;
            let (ln, recip) = ln_and_recip_1_to_3(s);
            worst = worst.max((ln - s.ln()).abs()).max((recip * s - 1.0).abs());
        }
        assert!(worst < 1e-15, "ln off by {worst:e}");
        assert_eq!(ln_and_recip_1_to_3(1.0), (0.0, 1.0));
    }

    /// The textbook formula with libm's exp/ln, one point at a time.
    fn scalar(theta: &[f64; 5], n: &[f64], d: &[f64], l: &[f64], delta: f64) -> (f64, [f64; 5]) {
        let [a, b, e, alpha, beta] = *theta;
        let mut value = 0.0;
        let mut g = [0.0; 5];
        for i in 0..l.len() {
            let t = [a - alpha * n[i], b - beta * d[i], e];
            let m = t.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let x = t.map(|v| (v - m).exp());
            let sum: f64 = x.iter().sum();
            let r = m + sum.ln() - l[i];
            let (h, dh) = if r.abs() <= delta {
                (0.5 * r * r, r)
            } else {
                (delta * (r.abs() - 0.5 * delta), delta * r.signum())
            };
            value += h;
            for k in 0..3 {
                g[k] += dh * x[k] / sum;
            }
            g[3] -= dh * x[0] / sum * n[i];
            g[4] -= dh * x[1] / sum * d[i];
        }
        (value, g)
    }

    #[test]
    fn matches_the_scalar_formula() {
        let n: Vec<f64> = (0..53).map(|i| (3e7 * (1.0 + i as f64)).ln()).collect();
        let d: Vec<f64> = (0..53)
            .map(|i| (1e9 * (2.0 + (i * 7 % 11) as f64)).ln())
            .collect();
        let l: Vec<f64> = (0..53)
            .map(|i| (1.9 + 0.8 / (1.0 + i as f64)).ln())
            .collect();
        let data = Chunked::new(&n, &d, &l);
        // Near the optimum (residuals inside δ), far from it (outside), and each term largest.
        for theta in [
            [6.2, 7.6, 0.6, 0.35, 0.37],
            [25.0, 0.0, -1.0, 0.0, 2.0],
            [0.0, 25.0, 1.0, 2.0, 0.0],
            [0.0, 0.0, 1.0, 1.0, 1.0],
        ] {
            let (v, g) = objective(crate::isa::detect(), &theta, &data, 1e-3);
            let (v0, g0) = scalar(&theta, &n, &d, &l, 1e-3);
            assert!((v / v0 - 1.0).abs() < 1e-13, "{theta:?}: {v} vs {v0}");
            for k in 0..5 {
                let scale = g0.iter().map(|x| x.abs()).fold(0.0, f64::max);
                assert!(
                    (g[k] - g0[k]).abs() <= 1e-12 * scale,
                    "{theta:?} ∂{k}: {} vs {}",
                    g[k],
                    g0[k]
                );
            }
        }
    }

    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        let n: Vec<f64> = (0..37).map(|i| (1e6 * (1.0 + i as f64)).ln()).collect();
        let d: Vec<f64> = (0..37).map(|i| (1e9 * (3.0 + i as f64)).ln()).collect();
        let l: Vec<f64> = (0..37)
            .map(|i| (2.0 + 1.0 / (1.0 + i as f64)).ln())
            .collect();
        let data = Chunked::new(&n, &d, &l);
        let theta = [6.0, 7.5, 0.5, 0.34, 0.28];
        let base = objective(Isa::BASELINE, &theta, &data, 1e-3);
        for kind in Kind::ALL {
            let Some(isa) = Isa::available(kind) else {
                // The subject is hardware this machine lacks: said, not skipped.
                crate::testing::say(&format!(
                    "this CPU has no {}: that copy is not compared",
                    kind.name()
                ));
                continue;
            };
            let got = objective(isa, &theta, &data, 1e-3);
            assert_eq!(base.0.to_bits(), got.0.to_bits(), "{}", kind.name());
            for k in 0..5 {
                assert_eq!(
                    base.1[k].to_bits(),
                    got.1[k].to_bits(),
                    "{} ∂{k}",
                    kind.name()
                );
            }
        }
    }
}
