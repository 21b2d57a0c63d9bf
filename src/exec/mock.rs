//! The mock executor (for tests and demos): instead of training, it writes the record a run
//! *would* have if loss followed L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, eq. 2)
//! times seeded log-normal noise, with a plausible learning curve. plan → run → fit → report
//! then takes seconds, and a fit must recover the law it was given.
//!
//! With `;multi_power=B,C,beta,gamma` after the law, the curves follow a known multi-power law
//! (Luo et al. 2025) under each run's planned learning rates instead: per size
//! L(t) = E + A/N^α + B_C·S₁(t)^−β_C − LD(t), where B_C = B·(η_peak / tokens per step)^β_C and
//! β_C = β, so that a constant learning rate gives exactly L(N, D), and the drop LD has the
//! given B, C, β and γ. A fit of `law: curve` must recover it.
//!
//! With `;lr=c,a,b,k` the learning rate matters: every loss is multiplied by
//! 1 + k·ln²(η/η*) with η*(N, D) = c·N^a·D^b (N total parameters, D the run's tokens), so a
//! sweep has an optimum where the law puts it — what learning-rate transfer is tested with.
//!
//! With `;batch=c,b,k` the batch size matters too: every loss is further multiplied by
//! 1 + k·ln²(B/B*) with B the run's tokens per step and B*(D) = c·D^b (Step Law's form), so a
//! batch sweep has an optimum where the law puts it.

use std::collections::BTreeMap;
use std::path::Path;

use super::Executor;
use crate::record::write_run;
use crate::record::{CurvePoint, RunResult, RunStatus};
use crate::rng::{SplitMix64, hash_str};
use crate::study::RunSpec;
use crate::study::metrics::{FACT_DECILES, Metric, decile_name};

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
    /// The multi-power drop (B, C, β, γ) the curves follow, if any (see the module).
    pub multi_power: Option<[f64; 4]>,
    /// The learning-rate optimum (c, a, b, k), if any (see the module).
    pub lr: Option<[f64; 4]>,
    /// The batch-size optimum (c, b, k), if any (see the module).
    pub batch: Option<[f64; 3]>,
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
            multi_power: None,
            lr: None,
            batch: None,
        }
    }
}

impl MockLaw {
    /// Loss at N parameters after D tokens, without noise.
    pub fn loss(&self, n: f64, d: f64) -> f64 {
        self.e + self.a / n.powf(self.alpha) + self.b / d.powf(self.beta)
    }

    /// The factor a run at learning rate `lr` pays for missing the optimum (1 without one).
    pub fn lr_factor(&self, n: f64, d: f64, lr: f64) -> f64 {
        match self.lr {
            Some([c, a, b, k]) => 1.0 + k * (lr / (c * n.powf(a) * d.powf(b))).ln().powi(2),
            None => 1.0,
        }
    }

    /// The factor a run of `batch_tokens` per step pays for missing the batch optimum at `d`
    /// tokens (1 without one).
    pub fn batch_factor(&self, d: f64, batch_tokens: f64) -> f64 {
        match self.batch {
            Some([c, b, k]) => 1.0 + k * (batch_tokens / (c * d.powf(b))).ln().powi(2),
            None => 1.0,
        }
    }

    /// The producer this law stands for in run identities: the mock and every number that
    /// shapes what it reports.
    pub fn producer(&self) -> String {
        let mut curve = self
            .multi_power
            .map(|[b, c, beta, gamma]| format!(";multi_power={b},{c},{beta},{gamma}"))
            .unwrap_or_default();
        if let Some([c, a, b, k]) = self.lr {
            curve.push_str(&format!(";lr={c},{a},{b},{k}"));
        }
        if let Some([c, b, k]) = self.batch {
            curve.push_str(&format!(";batch={c},{b},{k}"));
        }
        format!(
            "{}E={},A={},B={},alpha={},beta={},noise={}{curve}",
            crate::study::plan::MOCK_PRODUCER_PREFIX,
            self.e,
            self.a,
            self.b,
            self.alpha,
            self.beta,
            self.noise
        )
    }

    /// The multi-power curve law of a run of `n` parameters at peak learning rate `peak` and
    /// `step_tokens` per step (see the module), if the mock follows one.
    pub fn curve_law(
        &self,
        n: f64,
        peak: f64,
        step_tokens: f64,
    ) -> Option<crate::fit::curve::CurveParams> {
        let [b, c, beta, gamma] = self.multi_power?;
        Some(crate::fit::curve::CurveParams {
            l0: self.e + self.a / n.powf(self.alpha),
            a: self.b * (peak / step_tokens).powf(self.beta),
            alpha: self.beta,
            b,
            beta: Some(beta),
            gamma: Some(gamma),
            c: Some(c),
            train_offset: 0.0,
            rms_rel: 0.0,
            points: 0,
        })
    }

    /// The law a mock producer identity stands for (see [`MockLaw::producer`]).
    pub fn from_producer(producer: &str) -> Option<MockLaw> {
        let rest = producer.strip_prefix(crate::study::plan::MOCK_PRODUCER_PREFIX)?;
        let (rest, batch) = match rest.split_once(";batch=") {
            Some((law, batch)) => (law, Some(Self::parse_batch(batch)?)),
            None => (rest, None),
        };
        let (rest, lr) = match rest.split_once(";lr=") {
            Some((law, lr)) => (law, Some(Self::parse_lr(lr)?)),
            None => (rest, None),
        };
        let (rest, curve) = match rest.split_once(";multi_power=") {
            Some((law, curve)) => (law, Some(Self::parse_curve(curve)?)),
            None => (rest, None),
        };
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
            multi_power: curve,
            lr,
            batch,
        };
        (law.producer() == producer).then_some(law)
    }

    /// `B,C,beta,gamma` of a multi-power drop: finite, B, C and β positive, γ ≥ 0.
    fn parse_curve(text: &str) -> Option<[f64; 4]> {
        let v: Vec<f64> = text
            .split(',')
            .map(|v| v.trim().parse().ok())
            .collect::<Option<_>>()?;
        let [b, c, beta, gamma] = v[..] else {
            return None;
        };
        (v.iter().all(|x| x.is_finite()) && b > 0.0 && c > 0.0 && beta > 0.0 && gamma >= 0.0)
            .then_some([b, c, beta, gamma])
    }

    /// `c,a,b,k` of a learning-rate optimum: finite, c and k positive.
    fn parse_lr(text: &str) -> Option<[f64; 4]> {
        let v: Vec<f64> = text
            .split(',')
            .map(|v| v.trim().parse().ok())
            .collect::<Option<_>>()?;
        let [c, a, b, k] = v[..] else {
            return None;
        };
        (v.iter().all(|x| x.is_finite()) && c > 0.0 && k > 0.0).then_some([c, a, b, k])
    }

    /// `c,b,k` of a batch-size optimum: finite, c and k positive.
    fn parse_batch(text: &str) -> Option<[f64; 3]> {
        let v: Vec<f64> = text
            .split(',')
            .map(|v| v.trim().parse().ok())
            .collect::<Option<_>>()?;
        let [c, b, k] = v[..] else {
            return None;
        };
        (v.iter().all(|x| x.is_finite()) && c > 0.0 && k > 0.0).then_some([c, b, k])
    }

    /// Parse `E,A,B,alpha,beta[,noise][;multi_power=B,C,beta,gamma][;lr=c,a,b,k]
    /// [;batch=c,b,k]`: finite numbers, A, B, α, β positive, noise ≥ 0.
    pub fn parse(text: &str) -> Result<MockLaw, String> {
        let mut parts = text.split(';');
        let law_text = parts.next().unwrap_or_default();
        let (mut curve, mut lr, mut batch) = (None, None, None);
        for part in parts {
            if let Some(values) = part.strip_prefix("multi_power=") {
                curve = Some(Self::parse_curve(values).ok_or_else(|| {
                    format!(
                        "--mock-law `{text}`: give multi_power=B,C,beta,gamma (finite; B, C and \
                         beta > 0, gamma ≥ 0)"
                    )
                })?);
            } else if let Some(values) = part.strip_prefix("lr=") {
                lr = Some(Self::parse_lr(values).ok_or_else(|| {
                    format!("--mock-law `{text}`: give lr=c,a,b,k (finite; c and k > 0)")
                })?);
            } else if let Some(values) = part.strip_prefix("batch=") {
                batch = Some(Self::parse_batch(values).ok_or_else(|| {
                    format!("--mock-law `{text}`: give batch=c,b,k (finite; c and k > 0)")
                })?);
            } else {
                return Err(format!(
                    "--mock-law `{text}`: after `;` give multi_power=B,C,beta,gamma, \
                     lr=c,a,b,k or batch=c,b,k"
                ));
            }
        }
        let values: Vec<f64> = law_text
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
            multi_power: curve,
            lr,
            batch,
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
        let plan = spec.lr_plan();
        let lrs = plan.rates();
        let multi_power = self.law.curve_law(n, id.train.lr, tokens_per_step as f64);
        let clean = |step: u64, d: f64| match &multi_power {
            Some(law) => law
                .predict(
                    crate::fit::curve::CurveForm::MultiPower,
                    &lrs,
                    plan.warmup() as usize,
                    &[step],
                )
                .map_or(f64::NAN, |l| l[0]),
            None => self.law.loss(n, d),
        };
        let lr_factor = self.law.lr_factor(n, spec.tokens() as f64, id.train.lr)
            * self
                .law
                .batch_factor(spec.tokens() as f64, tokens_per_step as f64);
        let mut noisy =
            |step: u64, d: f64| clean(step, d) * lr_factor * (self.law.noise * rng.normal()).exp();
        let every = spec.steps.div_ceil(CURVE_POINTS).max(1);
        // The study's metrics and its tasks' accuracies and task losses.
        let names: Vec<String> = id
            .metrics
            .iter()
            .cloned()
            .chain(spec.tasks.iter().flat_map(|t| t.recorded()))
            .collect();
        let mut curve = Vec::new();
        let mut step = every.min(spec.steps);
        loop {
            let tokens = step * tokens_per_step;
            let loss = noisy(step, tokens as f64);
            on_step(step, loss);
            curve.push(CurvePoint {
                step,
                tokens,
                train_loss: loss,
                val_loss: Some(loss),
                lr: plan.at(step - 1),
                wall_seconds: 0.0,
                metrics: mock_metrics(&names, loss),
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
        result.metrics = curve.last().map(|p| p.metrics.clone()).unwrap_or_default();
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

/// The metrics the mock reports at a loss of `loss`: perplexity e^L; an accuracy that falls
/// with the loss as Gadre et al.'s error law has it, 0.1 + 1.5·e^(−0.7·L) (at most 1), for
/// `top1`, the facts recall and any other name (an external trainer's own metric); the facts'
/// deciles at that accuracy × (1 − d/10), d = 0…9; their precision 0.95 and confident share
/// the accuracy; the facts' task loss `facts_nll` the one the sigmoid
/// accuracy = 0.1 + 0.5/(1 + e^(4·(ℓ − 1))) maps to that accuracy (clamped inside the
/// sigmoid's range), so a two-step law can recover it; a task's `<name>_nll` the same.
fn mock_metrics(names: &[String], loss: f64) -> BTreeMap<String, f64> {
    let accuracy = (0.1 + 1.5 * (-0.7 * loss).exp()).min(1.0);
    let mut out = BTreeMap::new();
    for name in names {
        match Metric::parse(name) {
            Some(Metric::Perplexity) => {
                out.insert("perplexity".into(), loss.exp());
            }
            None if name.ends_with("_nll") => {
                out.insert(name.clone(), sigmoid_task_loss(accuracy));
            }
            Some(Metric::Top1) | None => {
                out.insert(name.clone(), accuracy);
            }
            Some(Metric::Markov) => {
                out.insert("markov_agreement".into(), accuracy);
                out.insert("markov_ceiling".into(), 0.95);
            }
            Some(Metric::Facts) => {
                out.insert("facts_recall".into(), accuracy);
                out.insert("facts_precision".into(), 0.95);
                out.insert("facts_confident".into(), accuracy);
                out.insert("facts_nll".into(), sigmoid_task_loss(accuracy));
                for d in 0..FACT_DECILES {
                    out.insert(decile_name(d), accuracy * (1.0 - d as f64 / 10.0));
                }
            }
        }
    }
    out.retain(|_, v| v.is_finite());
    out
}

/// The task loss ℓ the mock's sigmoid, accuracy = 0.1 + 0.5/(1 + e^(4·(ℓ − 1))), maps to
/// `accuracy` (clamped inside the sigmoid's range).
fn sigmoid_task_loss(accuracy: f64) -> f64 {
    let u = ((accuracy - 0.1) / 0.5).clamp(1e-9, 1.0 - 1e-9);
    1.0 + (1.0 / u - 1.0).ln() / 4.0
}
