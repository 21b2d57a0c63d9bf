//! L-BFGS (Nocedal 1980; Nocedal & Wright 2006, Algorithm 7.4 and 7.5) over fixed-size
//! parameter arrays, with a backtracking Armijo line search.
//!
//! Hand-written rather than argmin's: the Chinchilla fit runs it from 4,500 starts (and again
//! per bootstrap resample), so the inner loop must not allocate; with `[f64; P]` state every
//! iteration stays on the stack.

/// Stopping rules.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_iterations: usize,
    /// Stop when the largest gradient component is below this.
    pub gradient_tolerance: f64,
    /// Stop when an iteration lowers f by less than this fraction of |f|.
    pub relative_tolerance: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_iterations: 1000,
            gradient_tolerance: 1e-12,
            relative_tolerance: 1e-14,
        }
    }
}

/// Where a minimisation ended.
#[derive(Debug, Clone, Copy)]
pub struct Minimum<const P: usize> {
    pub x: [f64; P],
    pub f: f64,
    pub gradient: [f64; P],
    pub iterations: usize,
}

/// An objective: value and gradient at a point.
pub type Objective<'a, const P: usize> = &'a dyn Fn(&[f64; P]) -> (f64, [f64; P]);

/// Correction pairs kept.
const MEMORY: usize = 10;

fn dot<const P: usize>(a: &[f64; P], b: &[f64; P]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimise `f` (returning value and gradient) from `x0`. A non-finite value is treated as
/// +∞ by the line search, so the optimiser backs away from overflow.
pub fn minimize<const P: usize>(
    f: Objective<'_, P>,
    x0: [f64; P],
    settings: &Settings,
) -> Minimum<P> {
    let mut x = x0;
    let (mut fx, mut g) = f(&x);
    let mut s_hist = [[0.0; P]; MEMORY];
    let mut y_hist = [[0.0; P]; MEMORY];
    let mut rho = [0.0; MEMORY];
    let mut stored = 0usize;
    let mut next = 0usize;
    let mut iterations = 0;
    while iterations < settings.max_iterations && fx.is_finite() {
        if g.iter().all(|v| v.abs() < settings.gradient_tolerance) {
            break;
        }
        // Two-loop recursion: d = −H·g.
        let mut q = g;
        let mut alpha = [0.0; MEMORY];
        for k in 0..stored {
            let i = (next + MEMORY - 1 - k) % MEMORY;
            alpha[i] = rho[i] * dot(&s_hist[i], &q);
            for j in 0..P {
                q[j] -= alpha[i] * y_hist[i][j];
            }
        }
        let gamma = if stored > 0 {
            let i = (next + MEMORY - 1) % MEMORY;
            dot(&s_hist[i], &y_hist[i]) / dot(&y_hist[i], &y_hist[i])
        } else {
            1.0 / dot(&g, &g).sqrt().max(1e-300)
        };
        for v in &mut q {
            *v *= gamma;
        }
        for k in (0..stored).rev() {
            let i = (next + MEMORY - 1 - k) % MEMORY;
            let beta = rho[i] * dot(&y_hist[i], &q);
            for j in 0..P {
                q[j] += s_hist[i][j] * (alpha[i] - beta);
            }
        }
        let mut d = q.map(|v| -v);
        let mut slope = dot(&g, &d);
        if slope >= 0.0 || !slope.is_finite() {
            // Not a descent direction (curvature lost): restart from steepest descent.
            stored = 0;
            let scale = 1.0 / dot(&g, &g).sqrt().max(1e-300);
            d = g.map(|v| -v * scale);
            slope = dot(&g, &d);
        }
        // Backtracking line search with the Armijo condition.
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..60 {
            let mut trial = x;
            for j in 0..P {
                trial[j] += step * d[j];
            }
            let (ft, gt) = f(&trial);
            if ft.is_finite() && ft <= fx + 1e-4 * step * slope {
                accepted = Some((trial, ft, gt));
                break;
            }
            step *= 0.5;
        }
        let Some((x_new, f_new, g_new)) = accepted else {
            break; // no decrease possible along d: converged to rounding
        };
        iterations += 1;
        let mut s = [0.0; P];
        let mut y = [0.0; P];
        for j in 0..P {
            s[j] = x_new[j] - x[j];
            y[j] = g_new[j] - g[j];
        }
        let sy = dot(&s, &y);
        if sy > 1e-300 {
            s_hist[next] = s;
            y_hist[next] = y;
            rho[next] = 1.0 / sy;
            next = (next + 1) % MEMORY;
            stored = (stored + 1).min(MEMORY);
        }
        let decrease = fx - f_new;
        x = x_new;
        fx = f_new;
        g = g_new;
        if decrease <= settings.relative_tolerance * fx.abs().max(1e-300) {
            break;
        }
    }
    Minimum {
        x,
        f: fx,
        gradient: g,
        iterations,
    }
}

/// An objective the starts of [`multistart`] share across threads.
pub type SharedObjective<'a, const P: usize> = &'a (dyn Fn(&[f64; P]) -> (f64, [f64; P]) + Sync);

/// L-BFGS from every start (in parallel): the best finite objective and its point, ties to
/// the earliest start so the result does not depend on thread scheduling, and how many
/// starts ended within 1e-9 (relative) of it. `None` when no start reached a finite value.
pub fn multistart<const P: usize>(
    f: SharedObjective<'_, P>,
    starts: &[[f64; P]],
    settings: &Settings,
) -> Option<(f64, [f64; P], usize)> {
    use rayon::prelude::*;
    let results: Vec<(f64, [f64; P])> = starts
        .par_iter()
        .map(|x0| {
            let m = minimize(f, *x0, settings);
            (m.f, m.x)
        })
        .collect();
    let (_, &(best, x)) = results
        .iter()
        .enumerate()
        .filter(|(_, (v, _))| v.is_finite())
        .min_by(|p, q| p.1.0.total_cmp(&q.1.0).then(p.0.cmp(&q.0)))?;
    let at_best = results
        .iter()
        .filter(|(v, _)| (v - best).abs() <= 1e-9 * best.abs().max(1e-300))
        .count();
    Some((best, x, at_best))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_rosenbrock() {
        let f = |x: &[f64; 2]| {
            let (a, b) = (x[0], x[1]);
            let value = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
            let grad = [
                -2.0 * (1.0 - a) - 400.0 * a * (b - a * a),
                200.0 * (b - a * a),
            ];
            (value, grad)
        };
        let m = minimize(&f, [-1.2, 1.0], &Settings::default());
        assert!(
            (m.x[0] - 1.0).abs() < 1e-6 && (m.x[1] - 1.0).abs() < 1e-6,
            "{:?}",
            m
        );
        assert!(m.f < 1e-12);
    }
}
