//! Helpers of the Slurm executor's tests: running scalebook, waiting on Slurm, reading what
//! the store's submissions and records hold.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::root;

/// Whether a Slurm controller answers here; skips (fails under SCALEBOOK_NO_SKIP) if not.
pub fn slurm_ready(test: &str) -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%a"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("up"));
    if !up {
        scalebook::testing::skip(
            test,
            "no Slurm controller answers (`.ci/run` starts one with ../shared/slurm/start-slurm.sh)",
        );
    }
    up
}

pub fn command(args: &[&str], envs: &[(&str, &Path)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scalebook"));
    c.args(args)
        .current_dir(root())
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    c
}

pub fn run(args: &[&str], envs: &[(&str, &Path)]) -> Output {
    command(args, envs).output().expect("scalebook runs")
}

/// `scalebook run …` in the background, its stderr into `log`.
pub fn spawn(args: &[&str], envs: &[(&str, &Path)], log: &Path) -> Child {
    command(args, envs)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("scalebook starts")
}

pub fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn wait_child(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("scalebook run did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A submission in a store.
pub struct Sub {
    pub dir: PathBuf,
    pub job: u64,
    pub runs: Vec<String>,
    pub tasks: Vec<Vec<usize>>,
}

impl Sub {
    /// The array task that trains the run `name`.
    pub fn task_of(&self, name: &str) -> usize {
        let run = self.runs.iter().position(|n| n == name).unwrap();
        self.tasks.iter().position(|t| t.contains(&run)).unwrap()
    }
}

/// The submissions in a store, oldest first.
pub fn submissions(store: &Path) -> Vec<Sub> {
    let Ok(entries) = std::fs::read_dir(store.join("slurm")) else {
        return Vec::new();
    };
    let mut out: Vec<Sub> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path().join("submission.json")).ok()?;
            let s: serde_json::Value = serde_json::from_str(&text).ok()?;
            let runs = s["runs"]
                .as_array()?
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect();
            let tasks = serde_json::from_value(s["tasks"].clone()).ok()?;
            Some(Sub {
                dir: e.path(),
                job: s["job_id"].as_u64()?,
                runs,
                tasks,
            })
        })
        .collect();
    out.sort_by(|a, b| a.dir.cmp(&b.dir));
    out
}

/// Slurm's state of one array task (`RUNNING`, …), or "" once forgotten.
pub fn task_state(job: u64, index: usize) -> String {
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", &job.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(&format!("ArrayTaskId={index} ")))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|kv| kv.strip_prefix("JobState="))
                .map(str::to_string)
        })
        .unwrap_or_default()
}

pub fn result(store: &Path, run: &str) -> serde_json::Value {
    let dir = std::fs::read_dir(store.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(&format!("{run}-")) && n.len() == run.len() + 13
        })
        .unwrap_or_else(|| panic!("no entry for {run}"));
    serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap()).unwrap()
}

/// The record of the run named `run` that the submission in `submission` trained.
pub fn submitted_result(store: &Path, submission: &Path, run: &str) -> serde_json::Value {
    for spec in std::fs::read_dir(submission.join("specs")).unwrap() {
        let spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(spec.unwrap().path()).unwrap()).unwrap();
        if spec["name"] == run {
            let key = spec["key"].as_str().unwrap();
            let entry = store.join("runs").join(format!("{run}-{}", &key[..12]));
            let text = std::fs::read_to_string(entry.join("result.json")).unwrap();
            return serde_json::from_str(&text).unwrap();
        }
    }
    panic!("{run} is not in {}", submission.display())
}

/// Lines of every task log of a store's submissions containing `needle`.
pub fn log_lines(store: &Path, needle: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for sub in submissions(store) {
        for log in std::fs::read_dir(sub.dir.join("logs")).unwrap() {
            let text = std::fs::read_to_string(log.unwrap().path()).unwrap();
            lines.extend(
                text.lines()
                    .filter(|l| l.contains(needle))
                    .map(String::from),
            );
        }
    }
    lines
}
