//! Talking to Slurm through its commands: `sbatch` to submit, `scontrol show job` to see
//! each array task's state (no slurmdbd needed), `sacct` when accounting is there (it
//! remembers jobs `scontrol` has forgotten), `scancel` to cancel.

use std::path::Path;
use std::process::{Command, Stdio};

/// Where an array task stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    Pending,
    Running,
    /// Ended: completed, failed, cancelled, out of time or memory, lost with its node.
    Ended(Ending),
}

/// How an array task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Completed,
    /// Non-zero exit (`code`) or a signal.
    Failed {
        code: i32,
        signal: i32,
    },
    Cancelled,
    TimeLimit,
    OutOfMemory,
    NodeFailure,
    Preempted,
    /// Another terminal state (`BOOT_FAIL`, `DEADLINE`, …), as Slurm names it.
    Other(String),
}

impl Ending {
    /// Why the task's run has no record, for the run's failure reason.
    pub fn reason(&self) -> String {
        match self {
            Ending::Completed => "the task completed but left no record".into(),
            Ending::Failed { code, signal } if *signal != 0 => format!(
                "the task was killed by {}",
                crate::external::process::signal_name(*signal)
            ),
            Ending::Failed { code, .. } => format!("the task failed with exit code {code}"),
            Ending::Cancelled => "cancelled".into(),
            Ending::TimeLimit => "time limit: the task ran past its Slurm time limit".into(),
            Ending::OutOfMemory => "out of memory: the task exceeded its Slurm memory".into(),
            Ending::NodeFailure => "node failure".into(),
            Ending::Preempted => "preempted and not requeued".into(),
            Ending::Other(state) => format!("ended in Slurm state {state}"),
        }
    }
}

/// A state as `scontrol` or `sacct` print it (`TIMEOUT`, `CANCELLED by 0`), with the exit
/// code (`7:0`).
pub fn parse_state(state: &str, exit_code: &str) -> TaskState {
    let word = state
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_end_matches('+');
    let (code, signal) = exit_code
        .split_once(':')
        .map(|(c, s)| (c.parse().unwrap_or(0), s.parse().unwrap_or(0)))
        .unwrap_or((0, 0));
    match word {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED"
        | "RESV_DEL_HOLD" | "SUSPENDED" | "STOPPED" => TaskState::Pending,
        "RUNNING" | "COMPLETING" | "SIGNALING" | "STAGE_OUT" | "RESIZING" => TaskState::Running,
        "COMPLETED" => TaskState::Ended(Ending::Completed),
        "FAILED" => TaskState::Ended(Ending::Failed { code, signal }),
        "CANCELLED" => TaskState::Ended(Ending::Cancelled),
        "TIMEOUT" => TaskState::Ended(Ending::TimeLimit),
        "OUT_OF_MEMORY" => TaskState::Ended(Ending::OutOfMemory),
        "NODE_FAIL" => TaskState::Ended(Ending::NodeFailure),
        "PREEMPTED" => TaskState::Ended(Ending::Preempted),
        other => TaskState::Ended(Ending::Other(other.to_string())),
    }
}

/// The array task indices of `ArrayTaskId=`: `3`, `2-5%2`, `1,4-6`, `0-10:2`.
pub fn parse_indices(text: &str) -> Vec<usize> {
    let text = text.split('%').next().unwrap_or("");
    let mut out = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (range, step) = match part.split_once(':') {
            Some((r, s)) => (r, s.parse().unwrap_or(1).max(1)),
            None => (part, 1),
        };
        match range.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    out.extend((a..=b).step_by(step));
                }
            }
            None => out.extend(range.parse::<usize>().ok()),
        }
    }
    out
}

/// Whether a program is on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let p = dir.join(program);
            p.is_file()
                && std::fs::metadata(&p).is_ok_and(|m| {
                    std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
                })
        })
    })
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    run_in(program, args, None)
}

fn run_in(program: &str, args: &[&str], dir: Option<&Path>) -> Result<String, String> {
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let out = command
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(format!("{program} {}: {}", out.status, line.trim()))
    }
}

/// Submit a batch script from its folder (the tasks' working directory, which their
/// relative log paths name); the job id.
pub fn submit(script: &Path) -> Result<u64, String> {
    let dir = script.parent().filter(|d| !d.as_os_str().is_empty());
    let name = script.file_name().map(Path::new).unwrap_or(script);
    let out = run_in("sbatch", &["--parsable", &name.display().to_string()], dir)?;
    let id = out.trim().split(';').next().unwrap_or("");
    id.parse()
        .map_err(|_| format!("sbatch printed `{}`, not a job id", out.trim()))
}

/// The id of the job array named `name` that Slurm still knows, if any (`squeue`).
pub fn job_named(name: &str) -> Option<u64> {
    let out = run("squeue", &["--noheader", "--name", name, "--format", "%F"]).ok()?;
    out.lines().find_map(|l| l.trim().parse().ok())
}

/// Each array task's state, from `scontrol show job`; `None` once Slurm has forgotten the
/// job (MinJobAge after it ended).
pub fn tasks(job: u64) -> Result<Option<Vec<(usize, TaskState)>>, String> {
    let out = match run("scontrol", &["show", "job", "-o", &job.to_string()]) {
        Ok(out) => out,
        Err(e) if e.contains("Invalid job id") => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut tasks = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .unwrap_or("")
        };
        let state = parse_state(field("JobState"), field("ExitCode"));
        for index in parse_indices(field("ArrayTaskId")) {
            tasks.push((index, state.clone()));
        }
    }
    Ok(Some(tasks))
}

/// Each array task's state from `sacct`, when Slurm keeps accounting (`None` otherwise).
pub fn accounting(job: u64) -> Option<Vec<(usize, TaskState)>> {
    if !on_path("sacct") {
        return None;
    }
    let out = run(
        "sacct",
        &[
            "-n",
            "-P",
            "-X",
            "-j",
            &job.to_string(),
            "-o",
            "JobID,State,ExitCode",
        ],
    )
    .ok()?;
    let mut tasks = Vec::new();
    for line in out.lines() {
        let mut cols = line.split('|');
        let (Some(id), Some(state), Some(code)) = (cols.next(), cols.next(), cols.next()) else {
            continue;
        };
        let Some((_, index)) = id.split_once('_') else {
            continue;
        };
        let index = index.trim_start_matches('[').trim_end_matches(']');
        for i in parse_indices(index) {
            tasks.push((i, parse_state(state, code)));
        }
    }
    Some(tasks)
}

/// CPUs of a partition (the default one when `None`), from `sinfo`.
pub fn partition_cpus(partition: Option<&str>) -> Option<usize> {
    let out = match partition {
        Some(p) => run("sinfo", &["-h", "-p", p, "-o", "%P %C"]),
        None => run("sinfo", &["-h", "-o", "%P %C"]),
    }
    .ok()?;
    let line = out.lines().find(|l| {
        partition.is_some()
            || l.split_whitespace()
                .next()
                .is_some_and(|p| p.ends_with('*'))
    })?;
    // `debug* 0/2/0/2`: allocated/idle/other/total.
    line.split_whitespace()
        .nth(1)?
        .split('/')
        .nth(3)?
        .parse()
        .ok()
}

/// Cancel a job (every task of an array).
pub fn cancel(job: u64) -> Result<(), String> {
    run("scancel", &[&job.to_string()]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_and_states_read_as_slurm_prints_them() {
        assert_eq!(parse_indices("3"), vec![3]);
        assert_eq!(parse_indices("2-5%2"), vec![2, 3, 4, 5]);
        assert_eq!(parse_indices("1,4-6"), vec![1, 4, 5, 6]);
        assert_eq!(parse_indices("0-6:3"), vec![0, 3, 6]);
        assert_eq!(parse_indices("(null)"), Vec::<usize>::new());
        assert_eq!(parse_state("PENDING", "0:0"), TaskState::Pending);
        assert_eq!(parse_state("COMPLETING", "0:0"), TaskState::Running);
        assert_eq!(
            parse_state("FAILED", "7:0"),
            TaskState::Ended(Ending::Failed { code: 7, signal: 0 })
        );
        assert_eq!(
            parse_state("CANCELLED by 0", "0:15"),
            TaskState::Ended(Ending::Cancelled)
        );
        for (state, words) in [
            ("TIMEOUT", "time limit"),
            ("OUT_OF_MEMORY", "out of memory"),
            ("NODE_FAIL", "node failure"),
            ("BOOT_FAIL", "BOOT_FAIL"),
        ] {
            let TaskState::Ended(e) = parse_state(state, "0:0") else {
                panic!("{state}")
            };
            assert!(e.reason().contains(words), "{state}: {}", e.reason());
        }
        let killed = Ending::Failed { code: 0, signal: 9 };
        assert!(killed.reason().contains("SIGKILL"), "{}", killed.reason());
    }
}
