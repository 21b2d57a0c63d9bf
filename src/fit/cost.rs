//! Cost laws: wall-clock seconds and peak memory as power laws of N, D and, when the runs
//! trained with different thread counts, the threads T:
//! ln y = c + p·ln N + q·ln D + r·ln T, to forecast what a larger run will cost on this
//! machine (training time should follow ≈ N·D, i.e. p ≈ q ≈ 1, by the 6ND FLOP count, and
//! fall with T). Without a spread of thread counts r is 0 and the law holds at the one
//! thread count the runs used.

use super::linear::{hyperplane, plane};

/// y ≈ exp(c)·N^p·D^q·T^r.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CostLaw {
    pub c: f64,
    pub p: f64,
    pub q: f64,
    /// Exponent of the thread count (0 when every run used the same count).
    #[serde(default)]
    pub r: f64,
    /// The thread count [`CostLaw::predict`] forecasts at: the median of the fitted runs'.
    #[serde(default = "one")]
    pub threads: f64,
    /// RMSE of ln y.
    pub rmse_log: f64,
    pub points: usize,
}

fn one() -> f64 {
    1.0
}

impl CostLaw {
    /// At the fitted runs' median thread count.
    pub fn predict(&self, n: f64, d: f64) -> f64 {
        self.predict_at(n, d, self.threads)
    }

    /// At `threads` threads.
    pub fn predict_at(&self, n: f64, d: f64, threads: f64) -> f64 {
        (self.c + self.p * n.ln() + self.q * d.ln() + self.r * threads.ln()).exp()
    }
}

/// Fit `y(N, D, T)`; `None` when N and D (and T, if it varies) do not vary independently or
/// a value is not positive.
pub fn fit(n: &[f64], d: &[f64], threads: &[f64], y: &[f64]) -> Option<CostLaw> {
    if n.iter()
        .chain(d)
        .chain(threads)
        .chain(y)
        .any(|v| !v.is_finite() || *v <= 0.0)
    {
        return None;
    }
    let ln = |x: &[f64]| x.iter().map(|v| v.ln()).collect::<Vec<f64>>();
    let (ln_n, ln_d, ln_t, ln_y) = (ln(n), ln(d), ln(threads), ln(y));
    let varies = threads.iter().any(|t| *t != threads[0]);
    let [c, p, q, r] = if varies {
        hyperplane(&ln_n, &ln_d, &ln_t, &ln_y)?
    } else {
        let [c, p, q] = plane(&ln_n, &ln_d, &ln_y)?;
        [c, p, q, 0.0]
    };
    let ssr: f64 = (0..n.len())
        .map(|i| (c + p * ln_n[i] + q * ln_d[i] + r * ln_t[i] - ln_y[i]).powi(2))
        .sum();
    let mut sorted = threads.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(CostLaw {
        c,
        p,
        q,
        r,
        threads: sorted[sorted.len() / 2],
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
        let law = super::fit(&n, &d, &vec![1.0; n.len()], &y).unwrap();
        assert!(
            (law.p - 1.0).abs() < 1e-9 && (law.q - 1.0).abs() < 1e-9,
            "{law:?}"
        );
        assert!((law.predict(1e7, 1e7) / (6e14 / 2e10) - 1.0).abs() < 1e-9);
        assert_eq!(law.r, 0.0);
    }

    /// Runs that trained with different thread counts: the law learns the threads' effect,
    /// and a forecast at one thread count is not confused with another's.
    #[test]
    fn learns_the_effect_of_the_thread_count() {
        let (mut n, mut d, mut t, mut y) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, ni) in [1e5, 3e5, 1e6].into_iter().enumerate() {
            for (j, di) in [1e5, 4e5, 1.6e6].into_iter().enumerate() {
                let threads = [1.0, 2.0, 4.0][(i + j) % 3];
                n.push(ni);
                d.push(di);
                t.push(threads);
                // Two threads do the work in 0.6 of the time (T^-0.74).
                y.push(6.0 * ni * di / 2e10 * f64::powf(threads, -0.737));
            }
        }
        let law = super::fit(&n, &d, &t, &y).unwrap();
        assert!((law.r + 0.737).abs() < 1e-9, "{law:?}");
        assert_eq!(law.threads, 2.0);
        let one = law.predict_at(1e7, 1e7, 1.0);
        assert!((one / (6e14 / 2e10) - 1.0).abs() < 1e-9);
        assert!((law.predict_at(1e7, 1e7, 4.0) / one - 4f64.powf(-0.737)).abs() < 1e-9);
        // Ignoring the threads would have been wrong by up to the threads' factor.
        let blind = super::fit(&n, &d, &vec![1.0; n.len()], &y).unwrap();
        assert!(
            (blind.predict(1e7, 1e7) / one - 1.0).abs() > 0.1,
            "{blind:?}"
        );
    }
}
