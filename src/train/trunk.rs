//! A shared WSD trunk on disk (`STORE/trunks/<trunk>/`): snapshots of the model and optimizer
//! state at branch points (and every [`snapshot_seconds`] of training), each with the trunk's
//! history so far — the loss of every step and every evaluation — which a branch replays
//! instead of training. Snapshots are working state, never results: the store's `.gitignore`
//! leaves `trunks/` out, and the scheduler deletes a trunk's snapshots once no branch needs
//! them.
//!
//! A process that trains a trunk holds `lock` (an OS advisory lock, released when it dies), so
//! two processes never train the same trunk at once; the second waits and continues from the
//! snapshot the first left.
//!
//! File format (`step-<step>.snap`, little-endian): `SBTRUNK1`, the 16-character trunk key,
//! step (u64), AdamW's step count (i32), parameter count n (u64), evaluation count e (u64);
//! then n parameters, n first and n second moments (f32), `step` losses and `step` cumulative
//! seconds (f64), e × (step u64, loss f64); then the sha256 of everything before it. A file
//! that does not check out is ignored (an older snapshot, or step 0, is used instead).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::files::atomic::write_atomic;
use crate::files::lock::FileLock;
use crate::model::cpu::EngineState;

const MAGIC: &[u8; 8] = b"SBTRUNK1";

/// Environment variable: seconds of trunk training between periodic snapshots.
pub const SNAPSHOT_SECONDS_ENV: &str = "SCALEBOOK_SNAPSHOT_SECONDS";

/// Seconds of training between periodic snapshots (default 600; `SCALEBOOK_SNAPSHOT_SECONDS`).
pub fn snapshot_seconds() -> f64 {
    std::env::var(SNAPSHOT_SECONDS_ENV)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(600.0)
}

/// What the trunk did, step by step: what a branch replays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrunkLog {
    /// Training loss of every step.
    pub losses: Vec<f64>,
    /// Seconds of training when each step ended, counted over every process that trained it.
    pub seconds: Vec<f64>,
    /// (step, validation loss) of every evaluation.
    pub evals: Vec<(u64, f64)>,
    /// The study's metrics at each evaluation (empty when it measures none; a snapshot
    /// written without them reads back with none).
    pub eval_metrics: Vec<Metrics>,
}

/// Metrics of one evaluation by name.
pub type Metrics = std::collections::BTreeMap<String, f64>;

/// A trunk's state after `step` steps.
pub struct Snapshot {
    pub step: u64,
    pub params: Vec<f32>,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub t: i32,
    pub log: TrunkLog,
}

impl Snapshot {
    pub fn state(&self) -> EngineState<'_> {
        EngineState {
            params: &self.params,
            m: &self.m,
            v: &self.v,
            t: self.t,
        }
    }
}

/// One trunk's folder, locked while held.
pub struct TrunkDir {
    dir: PathBuf,
    trunk: String,
    lock: Option<FileLock>,
}

fn snapshot_name(step: u64) -> String {
    format!("step-{step:012}.snap")
}

/// Steps of the snapshots in `dir`, ascending.
fn snapshot_steps(dir: &Path) -> Vec<u64> {
    let mut steps: Vec<u64> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("step-")?
                .strip_suffix(".snap")?
                .parse()
                .ok()
        })
        .collect();
    steps.sort_unstable();
    steps
}

impl TrunkDir {
    /// Open (creating) `root/<trunk>` and wait for its lock.
    pub fn open(root: &Path, trunk: &str) -> io::Result<TrunkDir> {
        let dir = root.join(trunk);
        fs::create_dir_all(&dir)?;
        let lock = FileLock::exclusive(&dir.join("lock"))?;
        Ok(TrunkDir {
            dir,
            trunk: trunk.to_string(),
            lock: Some(lock),
        })
    }

    /// `root/<trunk>` without its lock: to read a snapshot no one will write again.
    fn unlocked(root: &Path, trunk: &str) -> TrunkDir {
        TrunkDir {
            dir: root.join(trunk),
            trunk: trunk.to_string(),
            lock: None,
        }
    }

    /// The snapshot after exactly `step` steps, if it reads back whole for `params`.
    fn exactly(&self, step: u64, params: usize) -> Option<Snapshot> {
        let bytes = fs::read(self.dir.join(snapshot_name(step))).ok()?;
        decode(&bytes, &self.trunk).filter(|s| s.step == step && s.params.len() == params)
    }

    /// Let other processes at the trunk (this one trains no more of it).
    pub fn release(&mut self) {
        self.lock = None;
    }

    /// The newest snapshot at or before `at_most` that reads back whole and fits a model of
    /// `params` parameters.
    pub fn latest(&self, at_most: u64, params: usize) -> Option<Snapshot> {
        snapshot_steps(&self.dir)
            .into_iter()
            .rev()
            .filter(|s| *s <= at_most)
            .find_map(|s| {
                let bytes = fs::read(self.dir.join(snapshot_name(s))).ok()?;
                decode(&bytes, &self.trunk)
                    .filter(|snap| snap.step == s && snap.params.len() == params)
            })
    }

    /// Save the state after `step` steps with the trunk's history.
    pub fn save(&self, step: u64, state: &EngineState, log: &TrunkLog) -> io::Result<()> {
        let bytes = encode(&self.trunk, step, state, log);
        write_atomic(&self.dir.join(snapshot_name(step)), &bytes)
    }
}

fn encode(trunk: &str, step: u64, state: &EngineState, log: &TrunkLog) -> Vec<u8> {
    let n = state.params.len();
    let mut out = Vec::with_capacity(64 + 12 * n + 16 * log.losses.len());
    out.extend_from_slice(MAGIC);
    let mut key = [b' '; 16];
    key[..trunk.len().min(16)].copy_from_slice(&trunk.as_bytes()[..trunk.len().min(16)]);
    out.extend_from_slice(&key);
    out.extend_from_slice(&step.to_le_bytes());
    out.extend_from_slice(&state.t.to_le_bytes());
    out.extend_from_slice(&(n as u64).to_le_bytes());
    out.extend_from_slice(&(log.evals.len() as u64).to_le_bytes());
    for buf in [state.params, state.m, state.v] {
        for x in buf {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    for buf in [&log.losses, &log.seconds] {
        for x in buf.iter().take(step as usize) {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    for (s, v) in &log.evals {
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    // The evaluations' metrics, when measured: JSON, then its length.
    if log.eval_metrics.iter().any(|m| !m.is_empty()) {
        let json = serde_json::to_vec(&log.eval_metrics).expect("metrics are plain numbers");
        out.extend_from_slice(&json);
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// A little-endian reader over a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    fn f64(&mut self) -> Option<f64> {
        self.take().map(f64::from_le_bytes)
    }
    fn f32s(&mut self, n: usize) -> Option<Vec<f32>> {
        (0..n)
            .map(|_| self.take().map(f32::from_le_bytes))
            .collect()
    }
    fn f64s(&mut self, n: usize) -> Option<Vec<f64>> {
        (0..n).map(|_| self.f64()).collect()
    }
}

fn decode(bytes: &[u8], trunk: &str) -> Option<Snapshot> {
    let (body, digest) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if Sha256::digest(body).as_slice() != digest {
        return None;
    }
    let mut r = Reader(body);
    if &r.take::<8>()? != MAGIC || r.take::<16>()?.trim_ascii() != trunk.as_bytes() {
        return None;
    }
    let step = r.u64()?;
    let t = i32::from_le_bytes(r.take()?);
    let n = usize::try_from(r.u64()?).ok()?;
    let evals = usize::try_from(r.u64()?).ok()?;
    let steps = usize::try_from(step).ok()?;
    // Sizes must account for the body exactly before anything is allocated.
    let expected = n.checked_mul(12)? + steps.checked_mul(16)? + evals.checked_mul(16)?;
    let extra = r.0.len().checked_sub(expected)?;
    let eval_metrics = match extra {
        0 => Vec::new(),
        _ => {
            let (json, len) = r.0[expected..].split_at_checked(extra.checked_sub(8)?)?;
            let len = u64::from_le_bytes(len.try_into().ok()?);
            if usize::try_from(len).ok()? != json.len() {
                return None;
            }
            let metrics: Vec<Metrics> = serde_json::from_slice(json).ok()?;
            (metrics.len() == evals).then_some(metrics)?
        }
    };
    let (params, m, v) = (r.f32s(n)?, r.f32s(n)?, r.f32s(n)?);
    let log = TrunkLog {
        losses: r.f64s(steps)?,
        seconds: r.f64s(steps)?,
        evals: (0..evals)
            .map(|_| Some((r.u64()?, r.f64()?)))
            .collect::<Option<_>>()?,
        eval_metrics,
    };
    Some(Snapshot {
        step,
        params,
        m,
        v,
        t,
        log,
    })
}

/// Whether the trunk has a snapshot after `step` steps (a branch starting there has left it).
pub fn has_snapshot(root: &Path, trunk: &str, step: u64) -> bool {
    root.join(trunk).join(snapshot_name(step)).is_file()
}

/// Delete a trunk's snapshots, unless a process is training the trunk now. Returns whether
/// it did. The folder keeps its (empty) lock file: deleting a lock file that another process
/// may have opened would let two processes hold the trunk's lock at once.
pub fn remove_trunk(root: &Path, trunk: &str) -> bool {
    let dir = root.join(trunk);
    if !dir.join("lock").is_file() {
        return false;
    }
    let Ok(Some(_held)) = FileLock::try_exclusive(&dir.join("lock")) else {
        return false;
    };
    for step in snapshot_steps(&dir) {
        let _ = fs::remove_file(dir.join(snapshot_name(step)));
    }
    true
}

/// A branch's link to its trunk while it trains: where it resumed, the history it replays
/// and extends, and the snapshots it leaves.
pub struct Link {
    dir: TrunkDir,
    /// The step the branch's decay starts at; steps before it are the trunk's.
    decay_start: u64,
    /// Where the trunk's other branches start (snapshots are left there too).
    points: Vec<u64>,
    /// Steps replayed from the snapshot it resumed from.
    resumed: u64,
    log: TrunkLog,
    interval: f64,
    last_save: std::time::Instant,
    /// The last periodic snapshot this process left (replaced by the next one).
    periodic: Option<u64>,
}

impl Link {
    /// Open the trunk of `branch` under `root` and bring `stepper` and `batcher` to its newest
    /// usable snapshot: the one at the branch point itself if it is there (nothing more of the
    /// trunk to train, so no lock), else the newest before it, waiting for any other process
    /// training the trunk. `points` are the trunk's branch points.
    pub fn open(
        root: &Path,
        branch: &crate::study::branches::Branch,
        points: &[u64],
        stepper: &mut super::step::Stepper,
        batcher: &mut crate::data::source::Batcher,
    ) -> io::Result<Link> {
        let params = stepper.parameter_count();
        let at_point = TrunkDir::unlocked(root, &branch.trunk)
            .exactly(branch.decay_start, params)
            .map(|snap| (TrunkDir::unlocked(root, &branch.trunk), snap));
        let (mut dir, found) = match at_point {
            Some((dir, snap)) => (dir, Some(snap)),
            None => {
                let dir = TrunkDir::open(root, &branch.trunk)?;
                let snap = dir.latest(branch.decay_start, params);
                (dir, snap)
            }
        };
        let (mut resumed, mut log) = (0, TrunkLog::default());
        if let Some(snap) = found
            && stepper.restore(&snap.state())
        {
            batcher.skip(snap.step);
            resumed = snap.step;
            log = snap.log;
        }
        if resumed == branch.decay_start {
            dir.release();
        }
        Ok(Link {
            dir,
            decay_start: branch.decay_start,
            points: points.to_vec(),
            resumed,
            log,
            interval: snapshot_seconds(),
            last_save: std::time::Instant::now(),
            periodic: None,
        })
    }

    /// Steps taken from the trunk's history rather than trained.
    pub fn resumed(&self) -> u64 {
        self.resumed
    }

    /// The trunk's loss at `step` when the branch replays it.
    pub fn replayed_loss(&self, step: u64) -> Option<f64> {
        (step < self.resumed).then(|| self.log.losses[step as usize])
    }

    /// The trunk's evaluation after `done` steps, when replayed: its loss and metrics.
    pub fn replayed_eval(&self, done: u64) -> Option<(f64, Metrics)> {
        if done > self.resumed {
            return None;
        }
        let i = self.log.evals.iter().position(|(s, _)| *s == done)?;
        let metrics = self.log.eval_metrics.get(i).cloned().unwrap_or_default();
        Some((self.log.evals[i].1, metrics))
    }

    /// Wall time on the curve after `done` steps: the trunk's own clock for replayed steps,
    /// and this process's `elapsed` past the resumed point after them.
    pub fn wall(&self, done: u64, elapsed: f64) -> f64 {
        if done <= self.resumed {
            return self.log.seconds[done as usize - 1];
        }
        let offset = self
            .resumed
            .checked_sub(1)
            .map_or(0.0, |i| self.log.seconds[i as usize]);
        offset + elapsed
    }

    /// Record a step this process trained (`done` steps in all); on the trunk, save a
    /// snapshot at every branch point and every [`snapshot_seconds`] (each periodic one
    /// replacing the last), and let the trunk go once the branch leaves it.
    pub fn trained(
        &mut self,
        done: u64,
        loss: f64,
        val: Option<(f64, &Metrics)>,
        wall: f64,
        stepper: &super::step::Stepper,
    ) -> io::Result<()> {
        if done > self.decay_start || done <= self.resumed {
            return Ok(());
        }
        self.log.losses.push(loss);
        self.log.seconds.push(wall);
        if let Some((v, metrics)) = val {
            // Replayed evaluations without metrics (an older snapshot) keep the lists aligned.
            self.log
                .eval_metrics
                .resize(self.log.evals.len(), Metrics::new());
            self.log.evals.push((done, v));
            self.log.eval_metrics.push(metrics.clone());
        }
        let point = done == self.decay_start || self.points.contains(&done);
        let due = self.last_save.elapsed().as_secs_f64() >= self.interval;
        if point || due {
            self.dir.save(done, &stepper.state(), &self.log)?;
            self.last_save = std::time::Instant::now();
            if let Some(old) = self.periodic.take() {
                let _ = fs::remove_file(self.dir.dir.join(snapshot_name(old)));
            }
            if !point {
                self.periodic = Some(done);
            }
        }
        if done == self.decay_start {
            self.dir.release();
        }
        Ok(())
    }
}

/// Delete the snapshot after `step` steps (its branch is done; the trunk resumes from a
/// later one, or a periodic one, if it must).
pub fn remove_snapshot(root: &Path, trunk: &str, step: u64) {
    let _ = fs::remove_file(root.join(trunk).join(snapshot_name(step)));
}

#[cfg(test)]
mod tests;
