//! Running the trainer's command under `scalebook supervise` ([`super::supervise`]), which
//! ends the trainer's whole process tree when the trainer ends, at a time limit, and when
//! `train-point` dies for any reason (a killed sweep leaves no orphan worker); output into
//! `trainer.log`, progress read from `curve.jsonl` as it grows, and its peak memory from the
//! kernel's accounting when it reports none.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::exec::tail::StepTail;

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ended {
    Exited(i32),
    Signal(i32),
    /// Killed after this many seconds, its time limit.
    TimedOut(f64),
}

/// What to run.
pub struct Launch<'a> {
    pub args: Vec<String>,
    pub workdir: &'a Path,
    pub env: Vec<(String, String)>,
    pub log: &'a Path,
    pub curve: &'a Path,
    pub timeout: Option<f64>,
}

/// How often the curve file is read while the trainer runs.
const POLL: Duration = Duration::from_millis(100);

/// Run the command to its end; `on_step(step, train_loss)` for each new curve line.
/// Returns how it ended and its peak resident memory (bytes), if the kernel said.
pub fn run(
    launch: &Launch,
    on_step: &mut dyn FnMut(u64, f64),
) -> Result<(Ended, Option<u64>), String> {
    let log = File::create(launch.log)
        .map_err(|e| format!("cannot create {}: {e}", launch.log.display()))?;
    let err_log = log
        .try_clone()
        .map_err(|e| format!("cannot share {}: {e}", launch.log.display()))?;
    let (program, rest) = launch
        .args
        .split_first()
        .ok_or("the trainer command is empty")?;
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the scalebook binary to supervise the trainer: {e}"))?;
    let mut command = Command::new(exe);
    command
        .arg("supervise")
        .arg("--")
        .env(super::supervise::PARENT_VAR, std::process::id().to_string())
        .arg(program)
        .args(rest)
        .current_dir(launch.workdir)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .process_group(0);
    let child = command.spawn().map_err(|e| {
        format!(
            "cannot start the trainer `{program}` in {}: {e}",
            launch.workdir.display()
        )
    })?;
    let pid = child.id() as libc::pid_t;
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _child = child;
        let _ = done_tx.send(wait(pid));
    });
    let start = Instant::now();
    let mut tail = StepTail::new(launch.curve.to_path_buf());
    let ended = loop {
        match done_rx.recv_timeout(POLL) {
            Ok(result) => break result,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("lost track of the trainer process".into());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        tail.read(on_step);
        if let Some(limit) = launch.timeout
            && start.elapsed().as_secs_f64() > limit
        {
            // The supervisor ends the trainer's whole tree; its process group is killed
            // outright should it not be done in a few seconds.
            // SAFETY: signalling our own child and its process group.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            if done_rx.recv_timeout(Duration::from_secs(5)).is_err() {
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
                let _ = done_rx.recv();
            }
            return Ok((Ended::TimedOut(limit), None));
        }
    };
    tail.read(on_step);
    ended
}

/// `wait4` on the child: how it ended and its peak resident memory.
fn wait(pid: libc::pid_t) -> Result<(Ended, Option<u64>), String> {
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waiting on our own child with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("waiting for the trainer: {e}"));
        }
    }
    let peak = (usage.ru_maxrss > 0).then(|| usage.ru_maxrss as u64 * 1024);
    let ended = if libc::WIFSIGNALED(status) {
        Ended::Signal(libc::WTERMSIG(status))
    } else {
        Ended::Exited(libc::WEXITSTATUS(status))
    };
    Ok((ended, peak))
}

/// The last non-empty line of the trainer's log, for a failure's reason.
pub fn last_log_line(log: &Path) -> Option<String> {
    let text = std::fs::read(log).ok()?;
    let text = String::from_utf8_lossy(&text[text.len().saturating_sub(4096)..]).into_owned();
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(300).collect())
}

/// `SIGKILL` for signal 9, …: the name a reader knows.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGHUP => "SIGHUP",
        libc::SIGPIPE => "SIGPIPE",
        _ => return format!("signal {signal}"),
    };
    format!("{name} (signal {signal})")
}
