//! Single-variable laws of loss over one quantity x (parameters, tokens or compute):
//!
//! - offset power law y = E + A·x^(−α) (Kaplan et al. 2020 eqs. 1.1–1.3 add the offset E of
//!   Hoffmann et al. 2022), fitted like approach 3: Huber on ln y with
//!   ln ŷ = LSE(a − α ln x, e), L-BFGS from a start grid;
//! - pure power law y = A·x^(−α): least squares on ln y = ln A − α ln x;
//! - logarithmic law y = a − b·ln x: least squares.
//!
//! Each fit reports RMSE and R² in log space and AIC (n·ln(SSR/n) + 2k, Akaike 1974), so forms
//! can be compared; [`compare`] adds the error on held-out largest x.

use super::lbfgs::{Settings, minimize};
use super::linear::line;

/// Functional forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    Offset,
    Pure,
    Log,
}

/// A fitted single-variable law.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PowerFit {
    pub form: Form,
    /// Offset law: E; pure: 0; log: a (intercept).
    pub e: f64,
    /// Offset and pure: A; log: b (slope on ln x).
    pub a: f64,
    /// Offset and pure: α; log: 0.
    pub alpha: f64,
    /// Root mean squared error of ln ŷ − ln y.
    pub rmse_log: f64,
    /// R² of ln y.
    pub r2_log: f64,
    pub aic: f64,
    pub points: usize,
}

impl PowerFit {
    pub fn predict(&self, x: f64) -> f64 {
        match self.form {
            Form::Offset => self.e + self.a * x.powf(-self.alpha),
            Form::Pure => self.a * x.powf(-self.alpha),
            Form::Log => self.e - self.a * x.ln(),
        }
    }

    fn parameters(&self) -> usize {
        match self.form {
            Form::Offset => 3,
            Form::Pure | Form::Log => 2,
        }
    }
}

/// Fit `form` to (x, y); `None` when the data cannot determine it (too few distinct x,
/// non-positive values, or a prediction that is not positive everywhere for log form).
pub fn fit(form: Form, x: &[f64], y: &[f64]) -> Option<PowerFit> {
    fit_from(form, x, y, None)
}

/// Refit warm-started from `from` (bootstrap resamples): the offset form runs one L-BFGS
/// from `from`'s parameters instead of its 216-start grid.
pub fn refit(x: &[f64], y: &[f64], from: &PowerFit) -> Option<PowerFit> {
    let start = (from.form == Form::Offset && from.a > 0.0 && from.e > 0.0)
        .then(|| [from.a.ln(), from.e.ln(), from.alpha]);
    fit_from(from.form, x, y, start)
}

fn fit_from(form: Form, x: &[f64], y: &[f64], start: Option<[f64; 3]>) -> Option<PowerFit> {
    let usable = x.len() == y.len() && x.iter().chain(y).all(|v| v.is_finite() && *v > 0.0) && {
        let mut d = x.to_vec();
        d.sort_by(f64::total_cmp);
        d.dedup();
        d.len() >= if form == Form::Offset { 3 } else { 2 }
    };
    if !usable {
        return None;
    }
    let ln_x: Vec<f64> = x.iter().map(|v| v.ln()).collect();
    let ln_y: Vec<f64> = y.iter().map(|v| v.ln()).collect();
    let (e, a, alpha) = match form {
        Form::Pure => {
            let (c, slope) = line(&ln_x, &ln_y)?;
            (0.0, c.exp(), -slope)
        }
        Form::Log => {
            let (c, slope) = line(&ln_x, y)?;
            (c, -slope, 0.0)
        }
        Form::Offset => fit_offset(&ln_x, &ln_y, start)?,
    };
    let mut result = PowerFit {
        form,
        e,
        a,
        alpha,
        rmse_log: 0.0,
        r2_log: 0.0,
        aic: 0.0,
        points: x.len(),
    };
    let predictions: Vec<f64> = x.iter().map(|&v| result.predict(v)).collect();
    if predictions.iter().any(|p| !p.is_finite() || *p <= 0.0) {
        return None;
    }
    let n = x.len() as f64;
    let ssr: f64 = predictions
        .iter()
        .zip(&ln_y)
        .map(|(p, ly)| (p.ln() - ly).powi(2))
        .sum();
    let mean = ln_y.iter().sum::<f64>() / n;
    let sst: f64 = ln_y.iter().map(|ly| (ly - mean).powi(2)).sum();
    result.rmse_log = (ssr / n).sqrt();
    result.r2_log = if sst > 0.0 { 1.0 - ssr / sst } else { 1.0 };
    // A perfect fit has SSR = 0; floor it so AIC stays finite.
    result.aic = n * (ssr.max(1e-300) / n).ln() + 2.0 * result.parameters() as f64;
    Some(result)
}

/// E + A·x^(−α) by Huber (δ = 1e-3) on ln y with ln ŷ = LSE(a − α ln x, e).
fn fit_offset(ln_x: &[f64], ln_y: &[f64], start: Option<[f64; 3]>) -> Option<(f64, f64, f64)> {
    const DELTA: f64 = 1e-3;
    let f = |t: &[f64; 3]| {
        let [a, e, alpha] = *t;
        let mut value = 0.0;
        let mut g = [0.0; 3];
        for (lx, ly) in ln_x.iter().zip(ln_y) {
            let t1 = a - alpha * lx;
            let m = t1.max(e);
            let (x1, x2) = ((t1 - m).exp(), (e - m).exp());
            let s = x1 + x2;
            let r = m + s.ln() - ly;
            let (h, dh) = if r.abs() <= DELTA {
                (0.5 * r * r, r)
            } else {
                (DELTA * (r.abs() - 0.5 * DELTA), DELTA * r.signum())
            };
            value += h;
            g[0] += dh * x1 / s;
            g[1] += dh * x2 / s;
            g[2] -= dh * x1 / s * lx;
        }
        (value, g)
    };
    let settings = Settings::default();
    let mut best: Option<(f64, [f64; 3])> = None;
    if let Some(x0) = start {
        let m = minimize(&f, x0, &settings);
        let [a, e, alpha] = m.x;
        return m.f.is_finite().then(|| (e.exp(), a.exp(), alpha));
    }
    for a in [0.0, 5.0, 10.0, 15.0, 20.0, 25.0] {
        for e in [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5] {
            for alpha in [0.05, 0.25, 0.5, 1.0, 1.5, 2.0] {
                let m = minimize(&f, [a, e, alpha], &settings);
                if m.f.is_finite() && best.is_none_or(|(bf, _)| m.f < bf) {
                    best = Some((m.f, m.x));
                }
            }
        }
    }
    let (_, [a, e, alpha]) = best?;
    Some((e.exp(), a.exp(), alpha))
}

/// Fit every form and score it by AIC and by the mean relative error on the points with the
/// largest x when fitted without them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Comparison {
    pub fit: PowerFit,
    /// Mean |ŷ/y − 1| on the held-out largest-x points (None when too few points).
    pub holdout_rel_error: Option<f64>,
}

pub fn compare(x: &[f64], y: &[f64]) -> Vec<Comparison> {
    let largest = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (train_x, train_y): (Vec<f64>, Vec<f64>) = x
        .iter()
        .zip(y)
        .filter(|(v, _)| **v < largest)
        .map(|(a, b)| (*a, *b))
        .unzip();
    [Form::Offset, Form::Pure, Form::Log]
        .into_iter()
        .filter_map(|form| {
            let full = fit(form, x, y)?;
            let holdout_rel_error = fit(form, &train_x, &train_y).map(|f| {
                let held: Vec<f64> = x
                    .iter()
                    .zip(y)
                    .filter(|(v, _)| **v == largest)
                    .map(|(v, obs)| (f.predict(*v) / obs - 1.0).abs())
                    .collect();
                held.iter().sum::<f64>() / held.len() as f64
            });
            Some(Comparison {
                fit: full,
                holdout_rel_error,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_recovers_its_own_law() {
        let x: Vec<f64> = (0..8).map(|i| 1e6 * 3f64.powi(i)).collect();
        let offset: Vec<f64> = x.iter().map(|v| 1.7 + 400.0 * v.powf(-0.34)).collect();
        let f = fit(Form::Offset, &x, &offset).unwrap();
        assert!(
            (f.e - 1.7).abs() < 1e-4 && (f.alpha - 0.34).abs() < 1e-4,
            "{f:?}"
        );
        assert!(f.r2_log > 0.999999);
        let pure: Vec<f64> = x.iter().map(|v| 50.0 * v.powf(-0.1)).collect();
        let f = fit(Form::Pure, &x, &pure).unwrap();
        assert!(
            (f.a - 50.0).abs() < 1e-8 && (f.alpha - 0.1).abs() < 1e-12,
            "{f:?}"
        );
        let log: Vec<f64> = x.iter().map(|v| 9.0 - 0.3 * v.ln()).collect();
        let f = fit(Form::Log, &x, &log).unwrap();
        assert!(
            (f.e - 9.0).abs() < 1e-9 && (f.a - 0.3).abs() < 1e-12,
            "{f:?}"
        );
    }

    #[test]
    fn comparison_prefers_the_true_form() {
        let x: Vec<f64> = (0..8).map(|i| 1e6 * 3f64.powi(i)).collect();
        let y: Vec<f64> = x.iter().map(|v| 1.7 + 400.0 * v.powf(-0.34)).collect();
        let scores = compare(&x, &y);
        let best = scores
            .iter()
            .min_by(|a, b| a.fit.aic.total_cmp(&b.fit.aic))
            .unwrap();
        assert_eq!(best.fit.form, Form::Offset);
        let offset_err = scores[0].holdout_rel_error.unwrap();
        assert!(offset_err < 1e-4, "{offset_err}");
        assert!(
            scores
                .iter()
                .skip(1)
                .all(|c| c.holdout_rel_error.unwrap() > offset_err)
        );
    }

    #[test]
    fn refuses_what_it_cannot_fit() {
        assert!(fit(Form::Offset, &[1.0, 2.0], &[3.0, 2.0]).is_none());
        assert!(fit(Form::Pure, &[1.0, 1.0], &[3.0, 2.0]).is_none());
        assert!(fit(Form::Pure, &[1.0, 2.0], &[3.0, -2.0]).is_none());
        assert!(fit(Form::Pure, &[1.0, 2.0], &[3.0, f64::NAN]).is_none());
    }
}
