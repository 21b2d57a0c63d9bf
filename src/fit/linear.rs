//! Ordinary least squares for the small linear models the laws reduce to: lines
//! (pure power laws in log space, logarithmic laws, exponents of N_opt ∝ Cᵃ), parabolas
//! (IsoFLOP profiles) and planes in two or three variables (cost laws), solved by normal
//! equations with Gaussian elimination — at most 4 unknowns, so conditioning is handled by
//! centring.

/// y ≈ c₀ + c₁·x: (intercept, slope). `None` with fewer than 2 distinct x.
pub fn line(x: &[f64], y: &[f64]) -> Option<(f64, f64)> {
    let n = x.len() as f64;
    if x.len() < 2 {
        return None;
    }
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let sxx: f64 = x.iter().map(|v| (v - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let slope = sxy / sxx;
    Some((my - slope * mx, slope))
}

/// y ≈ c₀ + c₁·x + c₂·x²: coefficients. `None` with fewer than 3 distinct x.
pub fn parabola(x: &[f64], y: &[f64]) -> Option<[f64; 3]> {
    let n = x.len();
    let mut distinct: Vec<f64> = x.to_vec();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if n < 3 || distinct.len() < 3 {
        return None;
    }
    // Centre x for conditioning, solve, then expand back.
    let m = x.iter().sum::<f64>() / n as f64;
    let rows: Vec<[f64; 4]> = x
        .iter()
        .map(|v| [1.0, v - m, (v - m).powi(2), 0.0])
        .collect();
    let c = solve_normal(&rows, y, 3)?;
    // c0 + c1 (x−m) + c2 (x−m)² in powers of x.
    Some([c[0] - c[1] * m + c[2] * m * m, c[1] - 2.0 * c[2] * m, c[2]])
}

/// y ≈ c₀ + c₁·u + c₂·v: coefficients. `None` when u and v do not both vary independently.
pub fn plane(u: &[f64], v: &[f64], y: &[f64]) -> Option<[f64; 3]> {
    let [c0, c1, c2, _] = affine(&[u, v], y)?;
    Some([c0, c1, c2])
}

/// y ≈ c₀ + c₁·u + c₂·v + c₃·w: coefficients. `None` when u, v and w do not all vary
/// independently.
pub fn hyperplane(u: &[f64], v: &[f64], w: &[f64], y: &[f64]) -> Option<[f64; 4]> {
    affine(&[u, v, w], y)
}

/// Least squares y ≈ c₀ + Σ cₖ·xₖ over up to three regressors (centred for conditioning);
/// unused trailing coefficients are 0.
fn affine(xs: &[&[f64]], y: &[f64]) -> Option<[f64; 4]> {
    let k = xs.len();
    if y.len() < k + 1 || xs.iter().any(|x| x.len() != y.len()) {
        return None;
    }
    let means: Vec<f64> = xs
        .iter()
        .map(|x| x.iter().sum::<f64>() / x.len() as f64)
        .collect();
    let rows: Vec<[f64; 4]> = (0..y.len())
        .map(|i| {
            let mut r = [0.0; 4];
            r[0] = 1.0;
            for (j, x) in xs.iter().enumerate() {
                r[j + 1] = x[i] - means[j];
            }
            r
        })
        .collect();
    let c = solve_normal(&rows, y, k + 1)?;
    let mut out = [0.0; 4];
    // c₀ − c₁·m₁ − c₂·m₂ − …, subtracted in that order.
    out[0] = c[0];
    for j in 0..k {
        out[0] -= c[j + 1] * means[j];
    }
    out[1..=k].copy_from_slice(&c[1..=k]);
    Some(out)
}

/// Least squares via the normal equations of the first `k` (≤ 4) columns; `None` when
/// singular.
fn solve_normal(rows: &[[f64; 4]], y: &[f64], k: usize) -> Option<[f64; 4]> {
    let mut a = [[0.0; 5]; 4];
    for (r, &yi) in rows.iter().zip(y) {
        for i in 0..k {
            for j in 0..k {
                a[i][j] += r[i] * r[j];
            }
            a[i][4] += r[i] * yi;
        }
    }
    let scale = (0..k).map(|i| a[i][i].abs()).fold(1e-300, f64::max);
    for col in 0..k {
        let pivot = (col..k).max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))?;
        if a[pivot][col].abs() <= 1e-12 * scale {
            return None;
        }
        a.swap(col, pivot);
        for row in 0..k {
            if row != col {
                let factor = a[row][col] / a[col][col];
                let pivot_row = a[col];
                for (cell, p) in a[row].iter_mut().zip(pivot_row).skip(col) {
                    *cell -= factor * p;
                }
            }
        }
    }
    let mut out = [0.0; 4];
    for (i, o) in out.iter_mut().enumerate().take(k) {
        *o = a[i][4] / a[i][i];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_exact_models() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y: Vec<f64> = x.iter().map(|v| 2.0 - 0.5 * v).collect();
        let (c, s) = line(&x, &y).unwrap();
        assert!((c - 2.0).abs() < 1e-12 && (s + 0.5).abs() < 1e-12);
        let y: Vec<f64> = x.iter().map(|v| 1.0 + 2.0 * v + 3.0 * v * v).collect();
        let p = parabola(&x, &y).unwrap();
        for (got, want) in p.iter().zip([1.0, 2.0, 3.0]) {
            assert!((got - want).abs() < 1e-9, "{p:?}");
        }
        let u = [1.0, 2.0, 3.0, 1.0, 2.0, 3.0];
        let v = [1.0, 1.0, 1.0, 2.0, 2.0, 3.0];
        let y: Vec<f64> = u
            .iter()
            .zip(&v)
            .map(|(a, b)| 0.5 + 1.5 * a - 2.0 * b)
            .collect();
        let c = plane(&u, &v, &y).unwrap();
        for (got, want) in c.iter().zip([0.5, 1.5, -2.0]) {
            assert!((got - want).abs() < 1e-9, "{c:?}");
        }
        let w = [1.0, 2.0, 1.0, 2.0, 4.0, 1.0];
        let y: Vec<f64> = (0..6)
            .map(|i| 0.5 + 1.5 * u[i] - 2.0 * v[i] + 0.25 * w[i])
            .collect();
        let c = hyperplane(&u, &v, &w, &y).unwrap();
        for (got, want) in c.iter().zip([0.5, 1.5, -2.0, 0.25]) {
            assert!((got - want).abs() < 1e-9, "{c:?}");
        }
    }

    #[test]
    fn refuses_degenerate_designs() {
        assert!(line(&[1.0, 1.0], &[1.0, 2.0]).is_none());
        assert!(parabola(&[1.0, 2.0, 2.0], &[1.0, 2.0, 3.0]).is_none());
        assert!(plane(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0], &[1.0, 2.0, 3.0]).is_none());
        let u = [1.0, 2.0, 3.0, 1.0, 2.0];
        let v = [1.0, 1.0, 1.0, 2.0, 2.0];
        assert!(hyperplane(&u, &v, &[1.0; 5], &[1.0, 2.0, 3.0, 4.0, 5.0]).is_none());
    }
}
