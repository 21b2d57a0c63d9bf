//! How long a study's runs take on this machine, from measured throughput only — never a
//! remembered constant. Each model shape's seconds per training step (one thread, the
//! study's batch and context) comes, in order of preference, from
//!
//! 1. the study's finished runs of that shape in the store, trained here (same CPU model,
//!    instruction-set path and trainer version) with one thread: their wall times, evaluation
//!    included, as a fixed cost per run plus a cost per step (a line, when the shape's runs
//!    differ in length);
//! 2. the calibration cache, `STORE/calibration/<machine>.json`;
//! 3. a calibration now: one untimed and two timed steps of the shape, then cached.
//!
//! A run's estimate adds its evaluations (a forward pass over `eval_tokens` every
//! `eval_every` steps, a third of a training step per batch) and, for a calibrated shape,
//! the fixed cost per run the measured shapes show. The mock executor's runs cost what the
//! mock reports. An external trainer cannot be calibrated without running it: its shapes
//! come from its finished runs in the store (any thread count: the trainer decides how it
//! uses them), a shape none of them has is scaled from the others by training FLOPs, and
//! with no finished run at all its time is unknown.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::identity::hex;
use crate::files::atomic::write_atomic;
use crate::record::pretty;
use crate::store::{EntryState, Store};
use crate::study::RunSpec;
use crate::study::plan::TRAINER_VERSION;
use crate::study::units::format_duration;
use crate::train::step::Stepper;

/// Where a shape's throughput came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Finished runs of the study in the store.
    Store,
    /// The calibration cache.
    Cached,
    /// Measured now.
    Calibrated,
    /// The mock executor's own cost.
    Mock,
    /// An external trainer's shape without finished runs, scaled by FLOPs from its others.
    Scaled,
    /// An external trainer with no finished run here: not estimated (`f64::NAN`).
    Unknown,
}

/// The estimate for a list of runs.
#[derive(Debug, Clone)]
pub struct Estimate {
    /// Seconds per run at one thread, in the order given.
    pub seconds: Vec<f64>,
    /// Where each run's throughput came from, in the same order.
    pub sources: Vec<Source>,
    /// The calibration cache file, when one was read or written.
    pub cache: Option<std::path::PathBuf>,
}

impl Estimate {
    /// How many runs' numbers came from `source`.
    pub fn count(&self, source: Source) -> usize {
        self.sources.iter().filter(|s| **s == source).count()
    }
}

/// What the calibration cache holds for one machine.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cache {
    cpu: String,
    isa: String,
    trainer: String,
    /// Shape key → seconds per training step at one thread.
    step_seconds: BTreeMap<String, f64>,
}

/// A shape at a batch: what one step's time depends on.
fn shape_key(spec: &RunSpec) -> String {
    let m = &spec.identity.model;
    format!(
        "l{}-d{}-h{}-t{}-v{}-b{}{}",
        m.layers,
        m.d_model,
        m.heads,
        m.context,
        m.vocab,
        spec.identity.train.batch,
        if m.tie_embeddings { "-tied" } else { "" }
    )
}

/// Seconds for one run whose steps take `step` seconds: its steps and its evaluations.
fn run_seconds(spec: &RunSpec, step: f64) -> f64 {
    let t = &spec.identity.train;
    let per_batch = (t.batch * spec.identity.model.context).max(1);
    let evals = spec.steps / t.eval_every.max(1) + 1;
    let eval_batches = t.eval_tokens.div_ceil(per_batch);
    step * (spec.steps as f64 + evals as f64 * eval_batches as f64 / 3.0)
}

/// Estimate `specs` (see the module docs); `store` supplies measured runs and the cache.
pub fn estimate(specs: &[RunSpec], store: Option<&Store>) -> Estimate {
    let (cpu, isa) = (crate::sys::cpu_model(), crate::isa::path());
    let cache_path = store.map(|s| {
        let id = hex(&<sha2::Sha256 as sha2::Digest>::digest(
            format!("{cpu}\n{isa}\n{TRAINER_VERSION}").as_bytes(),
        ));
        s.root()
            .join("calibration")
            .join(format!("{}.json", &id[..16]))
    });
    let mut cache: Cache = cache_path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    // 1. Measured runs of each shape, trained here with one thread: (step units, wall time).
    let mut measured: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    // External runs: seconds per training FLOP of each finished one.
    let mut per_flop: Vec<f64> = Vec::new();
    for spec in specs.iter().filter(|s| !s.is_mock()) {
        if let Some(EntryState::Done(e)) = store.map(|s| s.inspect(spec)) {
            let r = &e.result;
            let here = if spec.is_external() {
                per_flop.push(r.independent_wall_seconds() / spec.flops.max(1.0));
                r.cpu == cpu
            } else {
                r.cpu == cpu && r.isa.as_deref() == Some(isa.as_str()) && r.threads == 1
            };
            if here {
                let units = run_seconds(spec, 1.0);
                measured
                    .entry(shape_key(spec))
                    .or_default()
                    .push((units, r.independent_wall_seconds()));
            }
        }
    }
    let laws: BTreeMap<String, (f64, f64)> = measured
        .iter()
        .map(|(k, points)| (k.clone(), time_law(points)))
        .collect();
    // A run's fixed cost (start-up, data, the last evaluation) as the measured shapes show it.
    let mut overheads: Vec<f64> = laws.values().map(|l| l.0).collect();
    overheads.sort_by(f64::total_cmp);
    let overhead = overheads.get(overheads.len() / 2).copied().unwrap_or(0.0);
    per_flop.sort_by(f64::total_cmp);
    let per_flop = per_flop.get(per_flop.len() / 2).copied();
    let mut calibrated_now: Vec<String> = Vec::new();
    let (mut seconds, mut sources) = (Vec::new(), Vec::new());
    for spec in specs {
        if spec.is_mock() {
            // The mock reports the FLOPs at 20 GFLOP/s (see exec::mock).
            seconds.push(spec.flops / 20e9);
            sources.push(Source::Mock);
            continue;
        }
        let key = shape_key(spec);
        let (fixed, step, source) = if let Some(&(fixed, step)) = laws.get(&key) {
            (fixed, step, Source::Store)
        } else if spec.is_external() {
            let (seconds_now, source) = match per_flop {
                Some(rate) => (rate * spec.flops, Source::Scaled),
                None => (f64::NAN, Source::Unknown),
            };
            seconds.push(seconds_now);
            sources.push(source);
            continue;
        } else if let Some(step) = cache.step_seconds.get(&key) {
            let now = calibrated_now.contains(&key);
            let source = if now {
                Source::Calibrated
            } else {
                Source::Cached
            };
            (overhead, *step, source)
        } else {
            let step = calibrate(spec);
            cache.step_seconds.insert(key.clone(), step);
            calibrated_now.push(key);
            (overhead, step, Source::Calibrated)
        };
        seconds.push(fixed + run_seconds(spec, step));
        sources.push(source);
    }
    if !calibrated_now.is_empty()
        && let Some(path) = &cache_path
    {
        cache.cpu = cpu;
        cache.isa = isa;
        cache.trainer = TRAINER_VERSION.to_string();
        // A cache that cannot be written only costs a calibration next time.
        let _ = std::fs::create_dir_all(path.parent().expect("a file in a folder"))
            .and_then(|_| write_atomic(path, pretty(&cache).as_bytes()));
    }
    Estimate {
        seconds,
        sources,
        cache: cache_path,
    }
}

/// A shape's (fixed seconds per run, seconds per step unit) from its runs: a line through
/// (units, wall time) when they differ in length, else all of the time per unit.
fn time_law(points: &[(f64, f64)]) -> (f64, f64) {
    let x: Vec<f64> = points.iter().map(|p| p.0).collect();
    let y: Vec<f64> = points.iter().map(|p| p.1).collect();
    let shortest = y.iter().copied().fold(f64::INFINITY, f64::min);
    if let Some((fixed, step)) = crate::fit::linear::line(&x, &y)
        && step > 0.0
        && (0.0..=shortest).contains(&fixed)
    {
        return (fixed, step);
    }
    let units: f64 = x.iter().sum();
    (0.0, y.iter().sum::<f64>() / units.max(1e-12))
}

/// For each of `specs`, its time as a person reads it before it trains: "trained in 15s"
/// when the store holds its record, else "about 1m26s at one thread" from the estimate
/// (mock runs take none), else "unknown time".
pub fn time_to_say(specs: &[RunSpec], store: &Store) -> Vec<String> {
    let recorded: Vec<Option<f64>> = specs
        .iter()
        .map(|s| match store.inspect(s) {
            EntryState::Done(e) => Some(e.result.wall_seconds),
            _ => None,
        })
        .collect();
    let todo: Vec<RunSpec> = specs
        .iter()
        .zip(&recorded)
        .filter(|(s, r)| r.is_none() && !s.is_mock())
        .map(|(s, _)| s.clone())
        .collect();
    let mut estimated = estimate(&todo, Some(store)).seconds.into_iter();
    specs
        .iter()
        .zip(recorded)
        .map(|(s, r)| match r {
            Some(w) => format!("trained in {}", format_duration(w)),
            None if s.is_mock() => "instant (mock)".to_string(),
            None => match estimated.next().filter(|x| x.is_finite()) {
                Some(x) => format!("about {} at one thread", format_duration(x)),
                None => "unknown time".to_string(),
            },
        })
        .collect()
}

/// A first calibration step slower than this (seconds) is the measurement: a large shape is
/// not stepped twice more.
const SLOW_STEP: f64 = 1.0;

/// Seconds per training step of `spec`'s shape at one thread: the faster of two timed steps
/// after an untimed one, on random tokens (`f64::NAN` if the engine refuses the shape). A
/// first step over [`SLOW_STEP`] is taken as it is — an overestimate by its warm-up, which
/// errs on the side of a longer time — so calibrating one shape costs at most about a
/// second more than one step.
fn calibrate(spec: &RunSpec) -> f64 {
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(pool) => pool,
        Err(_) => return f64::NAN,
    };
    pool.install(|| {
        let m = spec.identity.model;
        let t = spec.identity.train;
        let Ok(mut stepper) = Stepper::new(&m, &t, 0) else {
            return f64::NAN;
        };
        let n = (t.batch * m.context) as usize;
        let mut rng = crate::rng::SplitMix64::new(1);
        let x: Vec<u32> = (0..n).map(|_| rng.below(m.vocab) as u32).collect();
        let y: Vec<u32> = (0..n).map(|_| rng.below(m.vocab) as u32).collect();
        timed(|| {
            let start = Instant::now();
            stepper.step(&x, &y, t.batch as usize, t.lr).ok()?;
            Some(start.elapsed().as_secs_f64())
        })
    })
}

/// The calibration's timing rule over `step` (one step, its seconds; `None` when the engine
/// refused): the faster of two timed steps after an untimed one, or the first alone when it
/// took over [`SLOW_STEP`].
fn timed(mut step: impl FnMut() -> Option<f64>) -> f64 {
    let mut best = f64::INFINITY;
    for i in 0..3 {
        let Some(took) = step() else {
            return f64::NAN;
        };
        if i == 0 && took > SLOW_STEP {
            return took;
        }
        if i > 0 {
            best = best.min(took);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_shape_is_stepped_once() {
        let mut calls = 0;
        assert_eq!(
            timed(|| {
                calls += 1;
                Some(2.5)
            }),
            2.5
        );
        assert_eq!(calls, 1);
        let mut calls = 0;
        let times = [0.9, 0.2, 0.3];
        assert_eq!(
            timed(|| {
                calls += 1;
                Some(times[calls - 1])
            }),
            0.2
        );
        assert_eq!(calls, 3);
        assert!(timed(|| None).is_nan());
    }
}
