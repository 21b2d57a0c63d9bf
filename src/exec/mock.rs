//! The mock executor (for tests and demos): instead of training, it writes the record a run
//! *would* have if loss followed L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, eq. 2)
//! times seeded log-normal noise, with a plausible learning curve. plan → run → fit → report
//! then takes seconds, and a fit must recover the law it was given.

use std::path::Path;

use super::Executor;
use crate::record::write_run;
use crate::record::{CurvePoint, RunResult, RunStatus};
use crate::rng::{SplitMix64, hash_str};
use crate::study::RunSpec;

/// The law and noise the mock reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MockLaw {
    pub e: f64,
    pub a: f64,
    pub b: f64,
    pub alpha: f64,
    pub beta: f64,
    /// Standard deviation of the multiplicative log-normal noise.
    pub noise: f64,
}

impl Default for MockLaw {
    /// Chinchilla's published fit (Hoffmann et al. 2022, §3.3) with 1 % noise.
    fn default() -> Self {
        MockLaw {
            e: 1.69,
            a: 406.4,
            b: 410.7,
            alpha: 0.34,
            beta: 0.28,
            noise: 0.01,
        }
    }
}

impl MockLaw {
    /// Loss at N parameters after D tokens, without noise.
    pub fn loss(&self, n: f64, d: f64) -> f64 {
        self.e + self.a / n.powf(self.alpha) + self.b / d.powf(self.beta)
    }

    /// The producer this law stands for in run identities: the mock and every number that
    /// shapes what it reports.
    pub fn producer(&self) -> String {
        format!(
            "{}E={},A={},B={},alpha={},beta={},noise={}",
            crate::study::plan::MOCK_PRODUCER_PREFIX,
            self.e,
            self.a,
            self.b,
            self.alpha,
            self.beta,
            self.noise
        )
    }

    /// The law a mock producer identity stands for (see [`MockLaw::producer`]).
    pub fn from_producer(producer: &str) -> Option<MockLaw> {
        let rest = producer.strip_prefix(crate::study::plan::MOCK_PRODUCER_PREFIX)?;
        let mut values = [0.0; 6];
        for (slot, (part, name)) in values.iter_mut().zip(
            rest.split(',')
                .zip(["E", "A", "B", "alpha", "beta", "noise"]),
        ) {
            *slot = part.strip_prefix(name)?.strip_prefix('=')?.parse().ok()?;
        }
        let [e, a, b, alpha, beta, noise] = values;
        let law = MockLaw {
            e,
            a,
            b,
            alpha,
            beta,
            noise,
        };
        (law.producer() == producer).then_some(law)
    }

    /// Parse `E,A,B,alpha,beta[,noise]`: finite numbers, A, B, α, β positive, noise ≥ 0.
    pub fn parse(text: &str) -> Result<MockLaw, String> {
        let values: Vec<f64> = text
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--mock-law `{text}`: {e}; expected E,A,B,alpha,beta[,noise]"))?;
        let (law, noise) = match values[..] {
            [e, a, b, alpha, beta] => ([e, a, b, alpha, beta], MockLaw::default().noise),
            [e, a, b, alpha, beta, noise] => ([e, a, b, alpha, beta], noise),
            _ => {
                return Err(format!(
                    "--mock-law `{text}`: expected 5 or 6 numbers E,A,B,alpha,beta[,noise]"
                ));
            }
        };
        let [e, a, b, alpha, beta] = law;
        if !(values.iter().all(|v| v.is_finite())
            && e >= 0.0
            && law[1..].iter().all(|v| *v > 0.0)
            && (0.0..=MAX_NOISE).contains(&noise))
        {
            return Err(format!(
                "--mock-law `{text}`: E must be finite and ≥ 0, noise between 0 and \
                 {MAX_NOISE}, A, B, alpha and beta finite and > 0"
            ));
        }
        Ok(MockLaw {
            e,
            a,
            b,
            alpha,
            beta,
            noise,
        })
    }
}

/// The largest noise the mock takes: a log-normal factor of standard deviation 1 already
/// spreads losses over e^±3 (three standard deviations); far larger ones (`1000`) overflow
/// to infinite losses.
pub const MAX_NOISE: f64 = 1.0;

/// Writes law-driven records instantly.
pub struct Mock {
    pub law: MockLaw,
}

/// Points on a mock learning curve.
const CURVE_POINTS: u64 = 20;

impl Executor for Mock {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn train(
        &self,
        spec: &RunSpec,
        out: &Path,
        on_step: &mut dyn FnMut(u64, f64),
    ) -> Result<(), String> {
        let id = &spec.identity;
        // Made-up numbers are filed only under the mock's own key, never a trained run's.
        if id.trainer != self.law.producer() {
            return Err(format!(
                "the mock executor reports only runs planned for it (this run's producer is `{}`)",
                id.trainer
            ));
        }
        let n = spec.params.total as f64;
        let tokens_per_step = id.train.batch * id.model.context;
        // Noise is a function of the key: the same run always reports the same loss.
        let mut rng = SplitMix64::new(hash_str(&spec.key));
        let mut noisy = |d: f64| self.law.loss(n, d) * (self.law.noise * rng.normal()).exp();
        let every = spec.steps.div_ceil(CURVE_POINTS).max(1);
        let mut curve = Vec::new();
        let plan = spec.lr_plan();
        let mut step = every.min(spec.steps);
        loop {
            let tokens = step * tokens_per_step;
            let loss = noisy(tokens as f64);
            on_step(step, loss);
            curve.push(CurvePoint {
                step,
                tokens,
                train_loss: loss,
                val_loss: Some(loss),
                lr: plan.at(step - 1),
                wall_seconds: 0.0,
            });
            if step == spec.steps {
                break;
            }
            step = (step + every).min(spec.steps);
        }
        if let Some(p) = curve.iter().find(|p| !p.train_loss.is_finite()) {
            return Err(format!(
                "the mock law gives a loss of {} at N = {n:e}, D = {}: not a number a record \
                 can hold",
                p.train_loss, p.tokens
            ));
        }
        let final_loss = curve.last().and_then(|p| p.val_loss);
        let best = curve
            .iter()
            .filter_map(|p| p.val_loss)
            .fold(f64::INFINITY, f64::min);
        let mut result = RunResult::unfinished(spec, RunStatus::Ok, None);
        result.tokens_trained = spec.tokens();
        result.val_loss = final_loss;
        result.best_val_loss = Some(best);
        result.train_loss = final_loss;
        // A plausible cost: the FLOPs at 20 GFLOP/s, so cost laws have something to fit.
        result.wall_seconds = spec.flops / 20e9;
        result.train_seconds = result.wall_seconds;
        result.tokens_per_second = spec.tokens() as f64 / result.train_seconds.max(1e-9);
        result.peak_rss_bytes = Some((64 << 20) + spec.params.total * 16);
        result.host = "mock".into();
        result.cpu = "mock".into();
        result.isa = None;
        // The numbers come from the mock's law, not from the data: the data's entropy rate is
        // no floor for them, so the record claims none.
        result.data_entropy_nats = None;
        result.data_entropy_stderr = None;
        write_run(out, &result, &curve, None).map_err(|e| format!("{}: {e}", out.display()))
    }
}
