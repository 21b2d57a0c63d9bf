//! Training one run: seeded init, AdamW (β1 0.9, β2 0.95, weight decay on matrices only),
//! the token-budget-matched LR schedule, global gradient clipping, periodic evaluation on a
//! fixed validation set, divergence detection ([`divergence`]: a spike that recovers is not a
//! divergence), and the learning curve.
//!
//! The trainer knows nothing of the store, fits or reports: it takes a [`RunSpec`] and returns
//! a [`Trained`] record; `scalebook train-point` writes it to disk.

pub mod bench;
pub mod divergence;
pub mod metrics;
pub mod schedule;
pub mod step;
pub mod tasks;
pub mod trunk;

use std::time::Instant;

use crate::data::bpe::Bpe;
use crate::data::source::{DataError, TokenSource, split_window};
use crate::record::{CurvePoint, RunResult, RunStatus};
use crate::study::RunSpec;
use step::Stepper;

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Bad or changed data (exit code 2).
    #[error(transparent)]
    Data(#[from] DataError),
    /// The spec is inconsistent (hand-edited, or from another version).
    #[error("{0}")]
    Spec(String),
}

/// How to train (not part of the run's identity).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Threads the process was configured with (recorded in the result).
    pub threads: usize,
    /// Folder of shared trunks (`STORE/trunks`): a branch continues its trunk from there.
    /// Without it a branch trains from step 0, to the same numbers.
    pub trunks: Option<std::path::PathBuf>,
}

/// A progress report after each step.
#[derive(Debug, Clone)]
pub struct Progress {
    pub step: u64,
    pub steps: u64,
    pub tokens: u64,
    pub train_loss: f64,
    /// Set on evaluation steps.
    pub val_loss: Option<f64>,
    pub lr: f64,
    pub elapsed: f64,
}

/// A finished (or stopped) run.
#[derive(Debug)]
pub struct Trained {
    pub result: RunResult,
    pub curve: Vec<CurvePoint>,
    pub tokenizer: Option<Bpe>,
}

/// Learning-curve points to keep at most (training loss is averaged between points).
pub const MAX_CURVE_POINTS: u64 = 1000;

/// Train `spec`. `entropy` is the data's entropy rate (synthetic data), recorded as is.
pub fn train(
    spec: &RunSpec,
    entropy: Option<(f64, f64)>,
    options: &TrainOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Trained, TrainError> {
    check_planned(spec, crate::study::plan::TRAINER_VERSION)?;
    let id = &spec.identity;
    let (context, batch) = (id.model.context as usize, id.train.batch as usize);
    let source = TokenSource::open(&spec.data, id.seed, context, id.train.eval_tokens as usize)?;
    let tokenizer = source.tokenizer.clone();

    let start = Instant::now();
    let mut run = Run::new(spec, entropy, options);
    let outcome = run.train_loop(&source, batch, context, options, &start, progress);
    let (status, reason) = match outcome {
        Ok(Stop::Finished) => (RunStatus::Ok, None),
        Ok(Stop::Diverged(why)) => (RunStatus::Diverged, Some(why)),
        Err(e) => (
            RunStatus::Failed,
            Some(format!("run {}: training error: {e}", spec.name)),
        ),
    };
    let mut trained = run.finish(status, reason, &start, tokenizer);
    trained.result.unique_tokens = source.train_tokens();
    Ok(trained)
}

/// Refuse a spec this trainer must not train: a key that does not match its identity, a run
/// planned for another producer, or data that changed since the plan.
pub fn check_planned(spec: &RunSpec, producer: &str) -> Result<(), TrainError> {
    if !spec.key_is_consistent() {
        return Err(TrainError::Spec(format!(
            "run {}: the key does not match the spec's identity (edited by hand, or written by \
             another scalebook version); re-create it with `scalebook plan --emit-specs`",
            spec.name
        )));
    }
    if spec.identity.trainer != producer {
        return Err(TrainError::Spec(format!(
            "run {}: planned for producer `{}`, but this engine is `{}`; plan it again with this \
             scalebook (`scalebook plan --emit-specs`)",
            spec.name, spec.identity.trainer, producer
        )));
    }
    // The bytes as they are now: a cached digest cannot vouch for a file edited since.
    let current = spec.data.identity_of_bytes().map_err(|e| {
        TrainError::Data(DataError {
            path: e.path,
            message: format!("cannot read data file: {}", e.source),
        })
    })?;
    if current != spec.identity.data {
        return Err(TrainError::Spec(format!(
            "run {}: the data changed since the run was planned (content hash differs); plan again",
            spec.name
        )));
    }
    Ok(())
}

enum Stop {
    Finished,
    Diverged(String),
}

/// The state of one run in progress.
struct Run<'a> {
    spec: &'a RunSpec,
    entropy: Option<(f64, f64)>,
    threads: usize,
    curve: Vec<CurvePoint>,
    steps_done: u64,
    train_seconds: f64,
    best_val: Option<f64>,
    last_val: Option<f64>,
    last_train: Option<f64>,
    diverged_at: Option<u64>,
    val_entropy: Option<f64>,
    spikes: divergence::Spikes,
    /// Steps a branch took from its trunk's snapshot instead of training.
    replayed: u64,
    /// The metrics of the latest evaluation.
    last_metrics: trunk::Metrics,
}

impl<'a> Run<'a> {
    fn new(spec: &'a RunSpec, entropy: Option<(f64, f64)>, options: &TrainOptions) -> Self {
        Run {
            spec,
            entropy,
            threads: options.threads,
            curve: Vec::new(),
            steps_done: 0,
            train_seconds: 0.0,
            best_val: None,
            last_val: None,
            last_train: None,
            diverged_at: None,
            val_entropy: None,
            spikes: divergence::Spikes::default(),
            replayed: 0,
            last_metrics: trunk::Metrics::new(),
        }
    }

    fn train_loop(
        &mut self,
        source: &TokenSource,
        batch: usize,
        context: usize,
        options: &TrainOptions,
        start: &Instant,
        progress: &mut dyn FnMut(&Progress),
    ) -> candle_core::Result<Stop> {
        let id = &self.spec.identity;
        let train = &id.train;
        let mut stepper = Stepper::new(&id.model, train, id.seed)?;
        let built = stepper.parameter_count() as u64;
        if built != self.spec.params.total {
            candle_core::bail!(
                "built {built} parameters, the plan counted {}",
                self.spec.params.total
            );
        }
        let scorer = metrics::Scorer::new(&id.metrics, source, context, train.eval_tokens as usize)
            .map_err(candle_core::Error::Msg)?;
        let tasks = tasks::TaskSet::open(&self.spec.tasks, source, context)
            .map_err(candle_core::Error::Msg)?;
        let (val, val_entropy) = source.validation(context, train.eval_tokens as usize);
        self.val_entropy = val_entropy;
        let mut batcher = source.batcher(id.seed, batch, context);
        let mut link = open_link(self.spec, options, &mut stepper, &mut batcher)?;
        self.replayed = link.as_ref().map_or(0, trunk::Link::resumed);
        let steps = self.spec.steps;
        let lr_plan = self.spec.lr_plan();
        let log_every = steps.div_ceil(MAX_CURVE_POINTS).max(1);
        let tokens_per_step = (batch * context) as u64;
        let mut monitor = divergence::Monitor::new(steps, lr_plan.warmup());
        let mut window = (0.0, 0u64);

        for step in 0..steps {
            let lr = lr_plan.at(step);
            let done = step + 1;
            let replayed = link.as_ref().and_then(|l| l.replayed_loss(step));
            let loss = match replayed {
                Some(loss) => loss,
                None => {
                    let t0 = Instant::now();
                    let b = batcher.next_batch();
                    let loss = stepper.step(&b.inputs, &b.targets, b.sequences, lr)?;
                    self.train_seconds += t0.elapsed().as_secs_f64();
                    loss
                }
            };
            let verdict = monitor.observe(loss);
            self.spikes = monitor.spikes().clone();
            if let Some(d) = verdict {
                self.diverged_at = Some(d.step);
                return Ok(Stop::Diverged(format!("run {}: {}", self.spec.name, d.why)));
            }
            self.steps_done = done;
            window = (window.0 + loss, window.1 + 1);

            let eval_now = done % train.eval_every == 0 || done == steps;
            let mut measured = trunk::Metrics::new();
            let val_loss = if eval_now {
                let (v, m) = match link.as_ref().and_then(|l| l.replayed_eval(done)) {
                    Some(replayed) => replayed,
                    None => evaluate(&mut stepper, &val, (context, batch), &scorer, &tasks)?,
                };
                if let Some(stop) = self.evaluated(done, v) {
                    return Ok(stop);
                }
                self.last_metrics.clone_from(&m);
                measured = m;
                Some(v)
            } else {
                None
            };
            let elapsed = match &mut link {
                Some(l) => {
                    let wall = l.wall(done, start.elapsed().as_secs_f64());
                    if replayed.is_none() {
                        let eval = val_loss.map(|v| (v, &measured));
                        l.trained(done, loss, eval, wall, &stepper)
                            .map_err(|e| candle_core::Error::Msg(format!("trunk snapshot: {e}")))?;
                    }
                    wall
                }
                None => start.elapsed().as_secs_f64(),
            };
            if done % log_every == 0 || eval_now {
                let mean = window.0 / window.1 as f64;
                self.last_train = Some(mean);
                self.curve.push(CurvePoint {
                    step: done,
                    tokens: done * tokens_per_step,
                    train_loss: mean,
                    val_loss,
                    lr,
                    wall_seconds: elapsed,
                    metrics: measured,
                });
                window = (0.0, 0);
            }
            progress(&Progress {
                step: done,
                steps,
                tokens: done * tokens_per_step,
                train_loss: loss,
                val_loss,
                lr,
                elapsed,
            });
        }
        if let Some(d) = monitor.finish() {
            self.diverged_at = Some(d.step);
            return Ok(Stop::Diverged(format!("run {}: {}", self.spec.name, d.why)));
        }
        Ok(Stop::Finished)
    }

    /// Record an evaluation after `done` steps; a non-finite loss stops the run.
    fn evaluated(&mut self, done: u64, v: f64) -> Option<Stop> {
        if !v.is_finite() {
            self.diverged_at = Some(done);
            return Some(Stop::Diverged(format!(
                "run {}: validation loss became {v} at step {done}",
                self.spec.name
            )));
        }
        self.last_val = Some(v);
        self.best_val = Some(self.best_val.map_or(v, |b| b.min(v)));
        None
    }

    fn finish(
        self,
        status: RunStatus,
        reason: Option<String>,
        start: &Instant,
        tokenizer: Option<Bpe>,
    ) -> Trained {
        let spec = self.spec;
        let id = &spec.identity;
        let tokens_trained = self.steps_done * id.train.batch * id.model.context;
        let mut result = RunResult::unfinished(spec, status, reason);
        result.diverged_at_step = self.diverged_at;
        result.spikes = Some(self.spikes);
        result.divergence_rule = Some(divergence::DIVERGENCE_RULE);
        result.tokens_trained = tokens_trained;
        // A stopped run has no final loss; its best evaluation so far stays on record.
        result.val_loss = if status == RunStatus::Ok {
            self.last_val
        } else {
            None
        };
        result.best_val_loss = self.best_val;
        if status == RunStatus::Ok {
            result.metrics = self.last_metrics;
        }
        result.train_loss = self.last_train;
        result.wall_seconds = start.elapsed().as_secs_f64();
        result.train_seconds = self.train_seconds;
        // A branch trained only the steps past its trunk's snapshot (the rest it replayed).
        let computed =
            tokens_trained - self.replayed.min(self.steps_done) * id.train.batch * id.model.context;
        if self.replayed > 0 {
            result.computed_tokens = Some(computed);
        }
        result.tokens_per_second = if self.train_seconds > 0.0 {
            computed as f64 / self.train_seconds
        } else {
            0.0
        };
        result.peak_rss_bytes = crate::sys::peak_rss_bytes();
        result.threads = self.threads;
        result.data_entropy_nats = self.entropy.map(|e| e.0);
        result.data_entropy_stderr = self.entropy.map(|e| e.1);
        result.val_entropy_nats = self.val_entropy;
        result.tokenizer_sha256 = tokenizer.as_ref().map(crate::record::tokenizer_sha256);
        Trained {
            result,
            curve: self.curve,
            tokenizer,
        }
    }
}

/// A branch's trunk (when the run is a branch and trunks are kept), with `stepper` and
/// `batcher` brought to its newest usable snapshot.
fn open_link(
    spec: &RunSpec,
    options: &TrainOptions,
    stepper: &mut Stepper,
    batcher: &mut crate::data::source::Batcher,
) -> candle_core::Result<Option<trunk::Link>> {
    let (Some(branch), Some(root)) = (&spec.identity.branch, &options.trunks) else {
        return Ok(None);
    };
    trunk::Link::open(root, branch, &spec.trunk_points, stepper, batcher)
        .map(Some)
        .map_err(|e| {
            candle_core::Error::Msg(format!("trunk {} in {}: {e}", branch.trunk, root.display()))
        })
}

/// Mean validation loss (nats/token) over every sequence of `val`, and the metrics `scorer`
/// measures on the same forward passes, with the task files scored after them.
fn evaluate(
    stepper: &mut Stepper,
    val: &[u32],
    (context, batch): (usize, usize),
    scorer: &metrics::Scorer,
    tasks: &tasks::TaskSet,
) -> candle_core::Result<(f64, trunk::Metrics)> {
    let n = val.len() / (context + 1);
    let mut total = 0.0;
    let mut tally = metrics::Tally::default();
    let mut first = 0;
    while first < n {
        let b = batch.min(n - first);
        let window = &val[first * (context + 1)..(first + b) * (context + 1)];
        let batch = split_window(window, b, context);
        let loss = if scorer.is_empty() {
            stepper.loss(&batch.inputs, &batch.targets, b)?
        } else {
            let (loss, top) = stepper.loss_and_top(&batch.inputs, &batch.targets, b)?;
            let at = first * context;
            scorer.add(
                &mut tally,
                (context, at),
                &batch.inputs,
                &batch.targets,
                &top,
            );
            loss
        };
        total += loss * (b * context) as f64;
        first += b;
    }
    let loss = total / (n * context) as f64;
    let mut metrics = scorer.finish(&tally, loss);
    if !tasks.is_empty() {
        tasks.score(stepper, context, batch, &mut metrics)?;
    }
    Ok((loss, metrics))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::data::DataSpec;
    use crate::data::synthetic::{SyntheticLanguage, TRAIN_STREAM};
    use crate::study::{from_bytes, plan::plan};

    /// A one-run study: 1 layer, d 32, context 16, batch 8, 200 steps.
    fn tiny_spec(train: &str) -> RunSpec {
        let text = format!(
            "version: 1\nname: tiny\nseed: 5\ndata: {{ vocab: 64, order: 2 }}\n\
             model: {{ context: 16, sizes: [{{ layers: 1, d_model: 32, heads: 2 }}] }}\n\
             tokens: [25600]\ntrain: {{ batch: 8, eval_every: 50, eval_tokens: 2048, {train} }}\n"
        );
        let study = from_bytes(text.as_bytes(), Path::new("tiny.yaml")).unwrap();
        plan(&study).unwrap().remove(0)
    }

    fn run(spec: &RunSpec) -> Trained {
        train(
            spec,
            None,
            &TrainOptions {
                threads: 1,
                trunks: None,
            },
            &mut |_| {},
        )
        .unwrap()
    }

    /// Entropy of the marginal token distribution of the training stream.
    fn unigram_entropy(spec: &RunSpec) -> f64 {
        let DataSpec::Synthetic(s) = &spec.data else {
            unreachable!()
        };
        let lang = SyntheticLanguage::new(s, spec.identity.seed);
        let mut stream = lang.stream(TRAIN_STREAM);
        let n = 200_000;
        let mut counts = vec![0f64; s.vocab as usize];
        for _ in 0..n {
            counts[stream.next_with_p().0 as usize] += 1.0;
        }
        counts
            .iter()
            .filter(|&&c| c > 0.0)
            .map(|c| -(c / n as f64) * (c / n as f64).ln())
            .sum()
    }

    #[test]
    fn tiny_model_learns_beyond_unigram_statistics() {
        let spec = tiny_spec("lr: 1e-2");
        assert_eq!(spec.steps, 200);
        let trained = run(&spec);
        let r = &trained.result;
        assert_eq!(r.status, RunStatus::Ok, "{:?}", r.reason);
        let val = r.val_loss.unwrap();
        let unigram = unigram_entropy(&spec);
        let floor = r.val_entropy_nats.unwrap();
        assert!(val < unigram, "val loss {val} ≥ unigram entropy {unigram}");
        assert!(val > floor, "val loss {val} below the true entropy {floor}");
        assert_eq!(r.tokens_trained, 25_600);
        assert!(r.best_val_loss.unwrap() <= val);
        // Evaluations at steps 50, 100, 150, 200.
        let evals: Vec<u64> = trained
            .curve
            .iter()
            .filter(|p| p.val_loss.is_some())
            .map(|p| p.step)
            .collect();
        assert_eq!(evals, vec![50, 100, 150, 200]);
        assert_eq!(trained.curve.len(), 200);
        assert!(trained.curve[0].train_loss > trained.curve[199].train_loss);
    }

    #[test]
    fn same_seed_same_curve_bit_for_bit() {
        let spec = tiny_spec("lr: 1e-2");
        let a = run(&spec);
        let b = run(&spec);
        let bits = |t: &Trained| -> Vec<(u64, Option<u64>)> {
            t.curve
                .iter()
                .map(|p| (p.train_loss.to_bits(), p.val_loss.map(f64::to_bits)))
                .collect()
        };
        assert_eq!(bits(&a), bits(&b));
        assert_eq!(
            a.result.val_loss.unwrap().to_bits(),
            b.result.val_loss.unwrap().to_bits()
        );
    }

    #[test]
    fn a_huge_learning_rate_diverges_with_a_reason() {
        let spec = tiny_spec("warmup: 0, lr: 1.0, grad_clip: 0");
        let trained = run(&spec);
        let r = &trained.result;
        assert_eq!(r.status, RunStatus::Diverged);
        assert!(
            r.reason
                .as_ref()
                .unwrap()
                .contains("run l1-d32-t2.56e4: training loss"),
            "{:?}",
            r.reason
        );
        assert!(r.diverged_at_step.is_some());
        assert!(r.val_loss.is_none());
    }

    #[test]
    fn an_edited_spec_is_refused() {
        let mut spec = tiny_spec("lr: 1e-2");
        spec.identity.train.lr = 0.5;
        let err = train(
            &spec,
            None,
            &TrainOptions {
                threads: 1,
                trunks: None,
            },
            &mut |_| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }
}
