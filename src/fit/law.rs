//! One interface for every fitted law (DESIGN.md, "Laws as one family"): its name, its
//! parameters by name, and its predicted loss wherever it can say — at (N, D) for the
//! cross-size laws, at the end of a schedule for the whole-curve law. The hold-out checks
//! predict through it.

use super::chinchilla::Law;
use super::curve::{CurveForm, CurveParams};
use super::options::PowerX;
use super::power::PowerFit;

/// Where a law is asked for a loss: N parameters after D tokens (C = `flops` of compute),
/// and for a whole-curve law the run's learning rates (update 1, 2, …) and warmup.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub n: f64,
    pub d: f64,
    pub flops: f64,
    pub schedule: Option<(&'a [f64], usize)>,
}

impl At<'_> {
    /// At (N, D), compute 6ND, no schedule.
    pub fn nd(n: f64, d: f64) -> At<'static> {
        At {
            n,
            d,
            flops: 6.0 * n * d,
            schedule: None,
        }
    }
}

/// A fitted scaling law.
pub trait ScalingLaw {
    /// `chinchilla`, `power tokens`, `curve multi_power`.
    fn name(&self) -> String;
    /// Its parameters by name.
    fn parameters(&self) -> Vec<(&'static str, f64)>;
    /// The predicted loss at `at`; `None` where the law cannot say (a whole-curve law without
    /// a schedule).
    fn loss(&self, at: &At) -> Option<f64>;
}

impl ScalingLaw for Law {
    fn name(&self) -> String {
        "chinchilla".into()
    }

    fn parameters(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("E", self.e),
            ("A", self.a),
            ("B", self.b),
            ("alpha", self.alpha),
            ("beta", self.beta),
        ]
    }

    fn loss(&self, at: &At) -> Option<f64> {
        Some(Law::loss(self, at.n, at.d))
    }
}

/// A single-variable law with the variable it reads.
#[derive(Debug, Clone, Copy)]
pub struct PowerLaw {
    pub x: PowerX,
    pub fit: PowerFit,
}

impl ScalingLaw for PowerLaw {
    fn name(&self) -> String {
        format!("power {:?} {:?}", self.x, self.fit.form).to_lowercase()
    }

    fn parameters(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("E", self.fit.e),
            ("A", self.fit.a),
            ("alpha", self.fit.alpha),
        ]
    }

    fn loss(&self, at: &At) -> Option<f64> {
        Some(self.fit.predict(match self.x {
            PowerX::Params => at.n,
            PowerX::Tokens => at.d,
            PowerX::Compute => at.flops,
        }))
    }
}

/// A whole-curve law of one size (and learning rate) in its form.
#[derive(Debug, Clone, Copy)]
pub struct CurveLaw {
    pub form: CurveForm,
    pub params: CurveParams,
}

impl ScalingLaw for CurveLaw {
    fn name(&self) -> String {
        format!("curve {}", self.form)
    }

    fn parameters(&self) -> Vec<(&'static str, f64)> {
        let p = &self.params;
        let mut out = vec![("L0", p.l0), ("A", p.a), ("alpha", p.alpha), ("B", p.b)];
        for (name, v) in [("beta", p.beta), ("gamma", p.gamma), ("C", p.c)] {
            out.extend(v.map(|v| (name, v)));
        }
        out
    }

    /// The final loss of a run under `at.schedule` (its length is the schedule's).
    fn loss(&self, at: &At) -> Option<f64> {
        let (lrs, warmup) = at.schedule?;
        let steps = lrs.len() as u64;
        self.params
            .predict(self.form, lrs, warmup, &[steps])
            .and_then(|l| l.first().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_law_predicts_through_the_interface() {
        let c = super::super::chinchilla::CHINCHILLA_2022;
        let at = At::nd(1e9, 2e10);
        assert_eq!(ScalingLaw::loss(&c, &at), Some(c.loss(1e9, 2e10)));
        assert_eq!(c.parameters().len(), 5);
        let curve = CurveLaw {
            form: CurveForm::MultiPower,
            params: super::super::curve::tests::TRUTH,
        };
        assert_eq!(curve.loss(&at), None);
        let (lrs, warmup) = super::super::curve::tests::cosine(1e-3, 500);
        let with = At {
            schedule: Some((&lrs, warmup)),
            ..at
        };
        let direct = curve
            .params
            .predict(CurveForm::MultiPower, &lrs, warmup, &[500])
            .unwrap()[0];
        assert_eq!(curve.loss(&with), Some(direct));
        assert_eq!(curve.parameters().len(), 7);
    }
}
