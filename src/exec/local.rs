//! The local executor: each run is a `scalebook train-point` child process with its own
//! thread count, so runs are isolated (a crash or out-of-memory kill takes one run, not the
//! sweep), each run's peak memory is its own, and the same command serves Slurm tasks.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use super::Executor;
use crate::files::atomic::write_atomic;
use crate::record::pretty;
use crate::study::RunSpec;

/// mimalloc's option for how long freed memory is kept before it returns to the OS.
const PURGE_DELAY: &str = "MIMALLOC_PURGE_DELAY";

/// Runs `train-point` children.
pub struct Local {
    /// The scalebook binary (normally this process's own executable).
    pub exe: PathBuf,
    pub threads: usize,
    /// Accelerators free to hand out, one per running run (external trainers; see
    /// [`Local::with_devices`]); empty when runs use no device.
    pub devices: Mutex<Vec<String>>,
    /// Where branches find and leave their trunks' snapshots (`STORE/trunks`); without it
    /// every branch trains from step 0.
    pub trunks: Option<PathBuf>,
}

impl Local {
    pub fn new(exe: PathBuf, threads: usize) -> Local {
        Local {
            exe,
            threads,
            devices: Mutex::new(Vec::new()),
            trunks: None,
        }
    }

    /// Let branches continue their trunks from the snapshots in `dir`.
    pub fn with_trunks(mut self, dir: PathBuf) -> Local {
        self.trunks = Some(dir);
        self
    }

    /// Give each running run one of `devices` (`CUDA_VISIBLE_DEVICES` of an external
    /// trainer); run no more jobs at once than there are devices.
    pub fn with_devices(mut self, devices: Vec<String>) -> Local {
        let mut free = devices;
        free.reverse();
        self.devices = Mutex::new(free);
        self
    }
}

/// One progress line of `train-point --progress json`.
#[derive(serde::Deserialize)]
struct StepLine {
    step: u64,
    loss: f64,
}

impl Executor for Local {
    fn name(&self) -> &'static str {
        "local"
    }

    fn train(
        &self,
        spec: &RunSpec,
        out: &Path,
        on_step: &mut dyn FnMut(u64, f64),
    ) -> Result<(), String> {
        let spec_path = out.join("spec.json");
        write_atomic(&spec_path, pretty(spec).as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", spec_path.display()))?;
        let mut command = Command::new(&self.exe);
        command
            .arg("train-point")
            .arg("--spec")
            .arg(&spec_path)
            .arg("--out")
            .arg(out)
            .arg("--threads")
            .arg(self.threads.to_string())
            .arg("--progress")
            .arg("json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // mimalloc hands freed memory back to the OS after 10 ms by default, so memory freed
        // in one step faults back in as fresh zeroed pages in the next. The engine keeps its
        // own buffers, but `gemm` allocates packing space per product: at 4/256/4 a default
        // run faults ~250 pages in per step, a never-purging one none after the first
        // (`/usr/bin/time -f %R scalebook bench train --layers 4 --d-model 256 --heads 4
        // --steps 12`: 4,341 vs 1,028 minor faults in all). A user's own setting wins.
        if std::env::var_os(PURGE_DELAY).is_none() {
            command.env(PURGE_DELAY, "-1");
        }
        // SAFETY: prctl is async-signal-safe. The child dies with its parent, so killing a
        // sweep (even with SIGKILL) leaves no orphan training behind.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let device = self.devices.lock().expect("device pool").pop();
        if let Some(d) = &device {
            command.arg("--device").arg(d);
        }
        if let (Some(dir), Some(_)) = (&self.trunks, &spec.identity.branch) {
            command.arg("--trunks").arg(dir);
        }
        let spawned = command.spawn();
        let result = spawned
            .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))
            .and_then(|child| watch(child, out, on_step));
        if let Some(d) = device {
            self.devices.lock().expect("device pool").push(d);
        }
        result
    }
}

/// Follow a `train-point` child to its end.
fn watch(
    mut child: std::process::Child,
    out: &Path,
    on_step: &mut dyn FnMut(u64, f64),
) -> Result<(), String> {
    let mut last_message = String::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            match serde_json::from_str::<StepLine>(&line) {
                Ok(step) => on_step(step.step, step.loss),
                Err(_) if !line.trim().is_empty() => last_message = line,
                Err(_) => {}
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for train-point: {e}"))?;
    // Exit 3 is a diverged or failed run that still wrote its record.
    if status.success() || (status.code() == Some(3) && out.join("result.json").is_file()) {
        Ok(())
    } else {
        Err(format!(
            "train-point {status}{}",
            if last_message.is_empty() {
                String::new()
            } else {
                format!(": {last_message}")
            }
        ))
    }
}
