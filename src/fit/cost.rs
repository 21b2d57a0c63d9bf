//! Cost laws: wall-clock seconds and peak memory as power laws of N and D,
//! ln y = c + p·ln N + q·ln D, to forecast what a larger run will cost on this machine
//! (training time should follow ≈ N·D, i.e. p ≈ q ≈ 1, by the 6ND FLOP count).

use super::linear::plane;

/// y ≈ exp(c)·N^p·D^q.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CostLaw {
    pub c: f64,
    pub p: f64,
    pub q: f64,
    /// RMSE of ln y.
    pub rmse_log: f64,
    pub points: usize,
}

impl CostLaw {
    pub fn predict(&self, n: f64, d: f64) -> f64 {
        (self.c + self.p * n.ln() + self.q * d.ln()).exp()
    }
}

/// Fit `y(N, D)`; `None` when N and D do not vary independently or a value is not positive.
pub fn fit(n: &[f64], d: &[f64], y: &[f64]) -> Option<CostLaw> {
    if n.iter()
        .chain(d)
        .chain(y)
        .any(|v| !v.is_finite() || *v <= 0.0)
    {
        return None;
    }
    let ln_n: Vec<f64> = n.iter().map(|v| v.ln()).collect();
    let ln_d: Vec<f64> = d.iter().map(|v| v.ln()).collect();
    let ln_y: Vec<f64> = y.iter().map(|v| v.ln()).collect();
    let [c, p, q] = plane(&ln_n, &ln_d, &ln_y)?;
    let ssr: f64 = (0..n.len())
        .map(|i| (c + p * ln_n[i] + q * ln_d[i] - ln_y[i]).powi(2))
        .sum();
    Some(CostLaw {
        c,
        p,
        q,
        rmse_log: (ssr / n.len() as f64).sqrt(),
        points: n.len(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn recovers_time_proportional_to_nd() {
        let mut n = Vec::new();
        let mut d = Vec::new();
        let mut y = Vec::new();
        for ni in [1e5, 3e5, 1e6] {
            for di in [1e5, 4e5, 1.6e6] {
                n.push(ni);
                d.push(di);
                y.push(6.0 * ni * di / 2e10);
            }
        }
        let law = super::fit(&n, &d, &y).unwrap();
        assert!(
            (law.p - 1.0).abs() < 1e-9 && (law.q - 1.0).abs() < 1e-9,
            "{law:?}"
        );
        assert!((law.predict(1e7, 1e7) / (6e14 / 2e10) - 1.0).abs() < 1e-9);
    }
}
