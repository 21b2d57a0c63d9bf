//! Training a run with the user's own command (`trainer:` in the study file) through the
//! trainer contract ([`contract`]): write the run's job file and its training and
//! validation tokens, run the command ([`process`]), and turn what it wrote into the same
//! record a built-in run leaves — or a failed one with the reason. The divergence rule is
//! the built-in engine's, applied to the trainer's curve.
//!
//! `scalebook train-point` calls this for external specs, so every executor that runs
//! `train-point` (local, and any that schedules it elsewhere) runs external trainers too.

pub mod contract;
pub mod process;
pub mod reported;
pub mod supervise;

use std::io::{BufWriter, Write};
use std::path::Path;

use contract::{Job, dtype_for};
use process::{Ended, Launch};
use reported::Reported;

use crate::data::source::{DataError, TokenSource};
use crate::record::{CurvePoint, RunResult, RunStatus};
use crate::study::RunSpec;
use crate::train::{MAX_CURVE_POINTS, TrainError, Trained, check_planned, divergence};

/// How to run one external run (not part of its identity).
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub threads: usize,
    /// The accelerator assigned to this run (`CUDA_VISIBLE_DEVICES`), if any.
    pub device: Option<String>,
}

/// The folder inside a run's folder where the trainer works; removed once its outputs are
/// read (its log stays beside the record as `trainer.log`).
pub const WORK_DIR: &str = "trainer";

/// Train `spec` with its external command into `out` (the run's folder).
pub fn train(
    spec: &RunSpec,
    out: &Path,
    options: &Options,
    on_step: &mut dyn FnMut(u64, f64),
) -> Result<Trained, TrainError> {
    let Some(trainer) = &spec.external else {
        return Err(TrainError::Spec(format!(
            "run {}: the spec names no external trainer",
            spec.name
        )));
    };
    let started = std::time::Instant::now();
    check_planned(spec, &trainer.producer())?;
    let template = crate::study::trainer::Template::parse(&trainer.command)
        .map_err(|why| TrainError::Spec(format!("run {}: trainer.command: {why}", spec.name)))?;
    let io = |path: &Path, e: std::io::Error| {
        TrainError::Data(DataError {
            path: path.to_path_buf(),
            message: crate::study::diagnostics::io_reason(&e),
        })
    };
    // The command runs in its own folder: every path it is given is absolute.
    let out = &std::path::absolute(out).map_err(|e| io(out, e))?;
    let dir = out.join(WORK_DIR);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let device = options.device.clone().unwrap_or_else(|| "cpu".into());
    let job = Job::new(spec, &dir, options.threads, &device);
    let inputs = write_tokens(spec, &job, trainer.stream_tokens)?;
    let job_path = dir.join("job.json");
    std::fs::write(&job_path, crate::record::pretty(&job)).map_err(|e| io(&job_path, e))?;

    let args = template.render(&|name| match name {
        "spec" => job_path.display().to_string(),
        "out" => dir.display().to_string(),
        "train_tokens" => job.data.train_tokens.display().to_string(),
        "val_tokens" => job.data.val_tokens.display().to_string(),
        "threads" => options.threads.to_string(),
        "device" => device.clone(),
        "name" => spec.name.clone(),
        "key" => spec.key.clone(),
        other => unreachable!("placeholder {other} is checked at parse time"),
    });
    let mut env = job.env(&job_path);
    for var in ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"] {
        if std::env::var_os(var).is_none() && !trainer.env.contains_key(var) {
            env.push((var.into(), options.threads.to_string()));
        }
    }
    if let Some(d) = &options.device {
        env.push(("CUDA_VISIBLE_DEVICES".into(), d.clone()));
    }
    env.extend(trainer.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let workdir = trainer.workdir.clone().unwrap_or_else(|| ".".into());
    let log = out.join("trainer.log");
    let launch = Launch {
        args,
        workdir: &workdir,
        env,
        log: &log,
        curve: &job.curve,
        timeout: trainer.timeout_seconds,
    };
    let prepared = started.elapsed().as_secs_f64();
    let launched = std::time::Instant::now();
    let done = std::sync::atomic::AtomicBool::new(false);
    let ran = std::thread::scope(|scope| {
        let fed = trainer
            .stream_tokens
            .then(|| scope.spawn(|| feed(&job.data.train_tokens, spec, &inputs.source, &done)));
        let ran = process::run(&launch, on_step);
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(fed) = fed {
            // A trainer that stopped reading mid-stream has exited: the writer's next
            // write fails and it returns.
            let _ = fed.join();
        }
        ran
    });
    let trainer_seconds = launched.elapsed().as_secs_f64();
    let judged = match ran {
        Err(why) => Judged::failed(why),
        Ok((ended, peak)) => judge(spec, &job, ended, &log, peak),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let mut trained = record(spec, &job, judged, options);
    trained.result.val_entropy_nats = inputs.val_entropy;
    // scalebook draws the trainer's windows from the corpus itself: its training split is
    // the pool the run repeats, as for the built-in engine.
    trained.result.unique_tokens = inputs.source.train_tokens();
    trained.result.tokenizer_sha256 = inputs
        .tokenizer
        .as_ref()
        .map(crate::record::tokenizer_sha256);
    trained.tokenizer = inputs.tokenizer;
    if std::env::var_os("SCALEBOOK_PROFILE").is_some() {
        let total = started.elapsed().as_secs_f64();
        eprintln!(
            "{}: orchestration {:.1} ms (before the command {:.1} ms, after it {:.1} ms), \
             command {:.1} ms",
            spec.name,
            (total - trainer_seconds) * 1e3,
            prepared * 1e3,
            (total - trainer_seconds - prepared) * 1e3,
            trainer_seconds * 1e3
        );
    }
    Ok(trained)
}

/// What writing the token files learned on the way, and the source (a stream is fed from
/// it while the trainer runs).
struct Inputs {
    val_entropy: Option<f64>,
    tokenizer: Option<crate::data::bpe::Bpe>,
    source: TokenSource,
}

/// The run's training tokens in the order the built-in engine trains them, and its
/// validation set, as flat little-endian files.
fn write_tokens(spec: &RunSpec, job: &Job, stream: bool) -> Result<Inputs, TrainError> {
    let id = &spec.identity;
    let context = id.model.context as usize;
    let source = TokenSource::open(&spec.data, id.seed, context, id.train.eval_tokens as usize)?;
    let err = |path: &Path, e: std::io::Error| {
        TrainError::Data(DataError {
            path: path.to_path_buf(),
            message: format!("cannot write token file: {e}"),
        })
    };
    let train = &job.data.train_tokens;
    if stream {
        make_fifo(train).map_err(|e| err(train, e))?;
    } else {
        write_file(train, &mut |w| put_stream(w, spec, &source)).map_err(|e| err(train, e))?;
    }
    let (val, val_entropy) = source.validation(context, id.train.eval_tokens as usize);
    let vocab = id.model.vocab;
    write_file(&job.data.val_tokens, &mut |w| put(w, &val, vocab))
        .map_err(|e| err(&job.data.val_tokens, e))?;
    if !job.tasks.is_empty() {
        let tasks = crate::train::tasks::TaskSet::open(&spec.tasks, &source, context)
            .map_err(|why| TrainError::Spec(format!("run {}: {why}", spec.name)))?;
        for (task, (_, items)) in job.tasks.iter().zip(tasks.each()) {
            write_file(&task.items, &mut |w| {
                for item in items {
                    let line = serde_json::json!({
                        "context": item.context,
                        "choices": item.choices,
                        "answer": item.answer,
                    });
                    writeln!(w, "{line}")?;
                }
                Ok(())
            })
            .map_err(|e| err(&task.items, e))?;
        }
    }
    Ok(Inputs {
        val_entropy,
        tokenizer: source.tokenizer.clone(),
        source,
    })
}

/// A token file, buffered; read back at once by the trainer, never kept, so not synced.
fn write_file(
    path: &Path,
    fill: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    fill(&mut w)?;
    w.flush()
}

/// The run's training stream — every step's sequences, in the order the built-in engine
/// trains them — as the contract's tokens.
fn put_stream(w: &mut dyn Write, spec: &RunSpec, source: &TokenSource) -> std::io::Result<()> {
    let id = &spec.identity;
    let (context, batch) = (id.model.context as usize, id.train.batch as usize);
    let mut batcher = source.batcher(id.seed, batch, context);
    for _ in 0..spec.steps {
        put(w, &batcher.next_window(), id.model.vocab)?;
    }
    Ok(())
}

/// Tokens as the contract's little-endian `u16` or `u32`.
fn put(w: &mut dyn Write, tokens: &[u32], vocab: u64) -> std::io::Result<()> {
    let (_, width) = dtype_for(vocab);
    let mut bytes = Vec::with_capacity(tokens.len() * width);
    for &t in tokens {
        if width == 2 {
            bytes.extend_from_slice(&(t as u16).to_le_bytes());
        } else {
            bytes.extend_from_slice(&t.to_le_bytes());
        }
    }
    w.write_all(&bytes)
}

/// A named pipe at `path`, readable and writable by this user only.
fn make_fifo(path: &Path) -> std::io::Result<()> {
    let c = crate::files::c_path(path)?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Fill the named pipe `path` with the run's training stream while the trainer reads it:
/// wait for the trainer to open it (until `done`: a trainer that never reads it is not
/// waited for), then write every step's sequences. Ends early, without error, when the
/// trainer closes its end.
fn feed(path: &Path, spec: &RunSpec, source: &TokenSource, done: &std::sync::atomic::AtomicBool) {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::Ordering;
    let file = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(file) => break file,
            // No reader yet.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                if done.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(_) => return,
        }
    };
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: clearing O_NONBLOCK on a descriptor this function owns.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    // A write error is the trainer closing its end: nothing more to send.
    let mut w = BufWriter::with_capacity(1 << 16, file);
    let _ = put_stream(&mut w, spec, source).and_then(|()| w.flush());
}

/// The trainer's outputs, judged.
struct Judged {
    status: RunStatus,
    reason: Option<String>,
    curve: Vec<CurvePoint>,
    /// What result.json said, and the peak memory the kernel saw.
    reported: Option<(Reported, Option<u64>)>,
    spikes: divergence::Spikes,
    /// The curve step at which the divergence rule fired.
    diverged_at: Option<u64>,
}

impl Judged {
    /// A run that failed before anything it wrote could be judged.
    fn failed(why: String) -> Judged {
        Judged {
            status: RunStatus::Failed,
            reason: Some(why),
            curve: Vec::new(),
            reported: None,
            spikes: Default::default(),
            diverged_at: None,
        }
    }
}

/// Turn what the trainer left into a status with its reason.
fn judge(spec: &RunSpec, job: &Job, ended: Ended, log: &Path, peak: Option<u64>) -> Judged {
    let said = || {
        process::last_log_line(log)
            .map(|l| format!(": {l}"))
            .unwrap_or_default()
    };
    let failed = Judged::failed;
    match ended {
        Ended::TimedOut(limit) => {
            return failed(format!(
                "the trainer ran past its time limit of {limit} s (trainer.timeout) and was killed"
            ));
        }
        Ended::Signal(s) => {
            return failed(format!(
                "the trainer was killed by {}{}",
                process::signal_name(s),
                said()
            ));
        }
        Ended::Exited(code) if code != 0 => {
            return failed(format!("the trainer exited with status {code}{}", said()));
        }
        Ended::Exited(_) => {}
    }
    let per_step = job.batch * job.model.shape.context;
    let mut curve = match reported::read_curve(&job.curve, per_step) {
        Ok(c) if c.is_empty() => return failed("the trainer's curve.jsonl has no points".into()),
        Ok(c) => c,
        Err(why) => return failed(why),
    };
    let reported = match reported::read_result(&job.result) {
        Ok(r) => r,
        Err(why) => return failed(why),
    };
    // The built-in engine's divergence rule, one curve point per observation.
    let warmup_points = curve
        .iter()
        .filter(|p| p.step <= job.schedule.warmup_steps)
        .count() as u64;
    let losses: Vec<f64> = curve.iter().map(|p| p.train_loss).collect();
    let (diverged, spikes) = divergence::assess(&losses, warmup_points);
    let diverged_at = diverged
        .as_ref()
        .map(|d| curve[(d.step as usize).clamp(1, curve.len()) - 1].step);
    let last = curve.last().map_or(0, |p| p.step);
    let (status, reason) = if let (Some(d), Some(at)) = (diverged, diverged_at) {
        // As the built-in engine records it: the curve up to the step before the rule fired.
        curve.retain(|p| p.step < at);
        (
            RunStatus::Diverged,
            Some(format!("{} (step {at} of the trainer's curve)", d.why)),
        )
    } else if let Some(v) = curve
        .iter()
        .filter_map(|p| p.val_loss)
        .chain(reported.val_loss)
        .find(|v| !v.is_finite())
    {
        let bad = curve
            .iter()
            .position(|p| p.val_loss.is_some_and(|v| !v.is_finite()));
        curve.truncate(bad.unwrap_or(curve.len()));
        (
            RunStatus::Diverged,
            Some(format!("validation loss became {v}")),
        )
    } else if last != spec.steps {
        (
            RunStatus::Failed,
            Some(format!(
                "the trainer's curve ends at step {last} of {} (exit status 0)",
                spec.steps
            )),
        )
    } else if reported.val_loss.is_none() {
        (
            RunStatus::Failed,
            Some("result.json has no val_loss for a finished run".into()),
        )
    } else if let Some(why) = reported::missing_metrics(&job.metrics, &curve, &reported) {
        (RunStatus::Failed, Some(why))
    } else {
        (RunStatus::Ok, None)
    };
    Judged {
        status,
        reason,
        diverged_at: diverged_at.or((status == RunStatus::Diverged).then_some(last)),
        curve: thin(curve, spec.steps),
        reported: Some((reported, peak)),
        spikes,
    }
}

/// At most about [`MAX_CURVE_POINTS`] points, as the built-in engine keeps: training
/// losses averaged over windows of `ceil(steps / MAX)` steps, every evaluation kept.
fn thin(curve: Vec<CurvePoint>, steps: u64) -> Vec<CurvePoint> {
    let every = steps.div_ceil(MAX_CURVE_POINTS).max(1);
    if curve.len() as u64 <= MAX_CURVE_POINTS || every == 1 {
        return curve;
    }
    let last = curve.last().map_or(0, |p| p.step);
    let (mut sum, mut n) = (0.0, 0u64);
    let mut out = Vec::new();
    for p in curve {
        sum += p.train_loss;
        n += 1;
        if p.step % every == 0 || p.val_loss.is_some() || p.step == last {
            out.push(CurvePoint {
                train_loss: sum / n as f64,
                ..p
            });
            (sum, n) = (0.0, 0);
        }
    }
    out
}

/// The run's record from the judged outputs.
fn record(spec: &RunSpec, job: &Job, judged: Judged, options: &Options) -> Trained {
    let Judged {
        status,
        reason,
        curve,
        reported,
        spikes,
        diverged_at,
    } = judged;
    let reason = reason.map(|r| format!("run {}: {r}", spec.name));
    let mut result = RunResult::unfinished(spec, status, reason);
    if let Some(external) = &mut result.spec.external {
        external.workdir = None;
    }
    result.isa = None;
    result.threads = options.threads;
    result.divergence_rule = Some(divergence::DIVERGENCE_RULE);
    result.spikes = Some(spikes);
    result.diverged_at_step = diverged_at;
    let per_step = job.batch * job.model.shape.context;
    result.tokens_trained = curve.last().map_or(0, |p| p.step.saturating_mul(per_step));
    result.best_val_loss = curve
        .iter()
        .filter_map(|p| p.val_loss)
        .filter(|v| v.is_finite())
        .reduce(f64::min);
    result.train_loss = curve.last().map(|p| p.train_loss);
    if let Some((r, peak)) = reported {
        if let (RunStatus::Ok, Some(v)) = (status, r.val_loss) {
            result.val_loss = Some(v);
            result.best_val_loss = Some(result.best_val_loss.map_or(v, |b| b.min(v)));
            result.metrics = r.metrics;
        }
        result.wall_seconds = r.wall_seconds;
        result.train_seconds = r.train_seconds.unwrap_or(r.wall_seconds);
        result.tokens_per_second = if result.train_seconds > 0.0 {
            result.tokens_trained as f64 / result.train_seconds
        } else {
            0.0
        };
        result.peak_rss_bytes = r.peak_memory_bytes.or(peak);
        result.device = Some(r.device);
        result.params_built = (r.params != spec.params.total).then_some(r.params);
    }
    // A number JSON cannot carry (`wall_seconds: 5e-324` makes tokens per second infinite)
    // fails the run, naming it, instead of the record.
    result.refuse_non_finite(&format!("run {}: the trainer's result.json", spec.name));
    Trained {
        result,
        curve,
        tokenizer: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_curves_are_thinned_like_the_engine_keeps_them() {
        let curve: Vec<CurvePoint> = (1..=2500)
            .map(|step| CurvePoint {
                step,
                tokens: step * 8,
                train_loss: step as f64,
                val_loss: (step % 250 == 0).then_some(1.0),
                lr: 0.1,
                wall_seconds: 0.0,
                metrics: Default::default(),
            })
            .collect();
        let thin = thin(curve.clone(), 2500);
        // Windows of 3 steps, plus the evaluations at multiples of 250 that end one early.
        assert!(thin.len() <= 1000, "{}", thin.len());
        assert_eq!(thin[0].step, 3);
        assert_eq!(thin[0].train_loss, 2.0);
        assert_eq!(thin.iter().filter(|p| p.val_loss.is_some()).count(), 10);
        assert_eq!(thin.last().unwrap().step, 2500);
        // Every step's loss is in exactly one window.
        let total: f64 = thin
            .windows(2)
            .map(|w| w[1].train_loss * (w[1].step - w[0].step) as f64)
            .sum::<f64>()
            + thin[0].train_loss * thin[0].step as f64;
        assert_eq!(total, (1..=2500).map(|s| s as f64).sum::<f64>());
        let short = curve[..900].to_vec();
        assert_eq!(super::thin(short.clone(), 900), short);
    }
}
