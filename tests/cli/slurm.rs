//! The Slurm executor against a real single-node Slurm (`.ci/run` starts one with
//! `../shared/slurm/start-slurm.sh`): the same bits as the local executor, attach instead of
//! resubmit, cancel, requeue, time limits, and the errors of a machine without Slurm.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{assert_no_crash, fresh_dir, root, stderr, stdout};

/// Whether a Slurm controller answers here; skips (fails under SCALEBOOK_NO_SKIP) if not.
fn slurm_ready(test: &str) -> bool {
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

fn command(args: &[&str], envs: &[(&str, &Path)]) -> Command {
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

fn run(args: &[&str], envs: &[(&str, &Path)]) -> Output {
    command(args, envs).output().expect("scalebook runs")
}

/// `scalebook run …` in the background, its stderr into `log`.
fn spawn(args: &[&str], envs: &[(&str, &Path)], log: &Path) -> Child {
    command(args, envs)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("scalebook starts")
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_child(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
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
struct Sub {
    dir: PathBuf,
    job: u64,
    runs: Vec<String>,
    tasks: Vec<Vec<usize>>,
}

impl Sub {
    /// The array task that trains the run `name`.
    fn task_of(&self, name: &str) -> usize {
        let run = self.runs.iter().position(|n| n == name).unwrap();
        self.tasks.iter().position(|t| t.contains(&run)).unwrap()
    }
}

/// The submissions in a store, oldest first.
fn submissions(store: &Path) -> Vec<Sub> {
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
fn task_state(job: u64, index: usize) -> String {
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

fn result(store: &Path, run: &str) -> serde_json::Value {
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
fn submitted_result(store: &Path, submission: &Path, run: &str) -> serde_json::Value {
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
fn log_lines(store: &Path, needle: &str) -> Vec<String> {
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

const SIX: &str = "\
version: 1
name: six
seed: 3
data: { vocab: 64, order: 2 }
model:
  context: 16
  sizes: [{ layers: 1, d_model: 16, heads: 2 }, { layers: 1, d_model: 32, heads: 2 }]
tokens: [2048, 4096, 8192]
train: { batch: 8, lr: 1e-2, eval_every: 16, eval_tokens: 512 }
fits:
  - { law: power, x: tokens, form: pure, bootstrap: 0 }
";

/// Every curve line without its wall time.
fn numbers(store: &Path, entry: &str) -> Vec<String> {
    std::fs::read_to_string(store.join("runs").join(entry).join("curve.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("wall_seconds");
            v.to_string()
        })
        .collect()
}

#[test]
fn slurm_runs_are_the_local_runs_bit_for_bit_and_one_entry() {
    if !slurm_ready("slurm_runs_are_the_local_runs_bit_for_bit_and_one_entry") {
        return;
    }
    let dir = fresh_dir("slurm-six");
    let study = dir.join("six.yaml");
    std::fs::write(&study, SIX).unwrap();
    let (local, cluster) = (dir.join("local"), dir.join("cluster"));
    let s = study.to_str().unwrap();
    let common = ["--no-report", "--threads-per-job", "1"];
    let l = run(
        &[&["run", s, "--store", local.to_str().unwrap()], &common[..]].concat(),
        &[],
    );
    assert!(l.status.success(), "{}", stderr(&l));
    let c_args = [
        &[
            "run",
            s,
            "--store",
            cluster.to_str().unwrap(),
            "--executor",
            "slurm",
        ],
        &common[..],
    ]
    .concat();
    let c = run(&c_args, &[]);
    assert!(c.status.success(), "{}", stderr(&c));
    let err = stderr(&c);
    assert!(err.contains("submitted Slurm job"), "{err}");
    assert!(
        err.contains("6 trained, 0 cached, 0 failed (slurm executor"),
        "{err}"
    );
    // The same entries (keys), and the same numbers in every curve and result.
    let entries = |store: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(store.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(entries(&local), entries(&cluster));
    assert_eq!(entries(&local).len(), 6);
    for entry in entries(&local) {
        assert_eq!(
            numbers(&local, &entry),
            numbers(&cluster, &entry),
            "{entry}"
        );
        let name = &entry[..entry.len() - 13];
        let (a, b) = (result(&local, name), result(&cluster, name));
        for field in [
            "val_loss",
            "best_val_loss",
            "train_loss",
            "tokens_trained",
            "threads",
        ] {
            assert_eq!(a[field], b[field], "{entry}: {field}");
        }
    }
    // The collected rows agree but for timings and memory.
    let rows = |store: &Path| {
        let text = std::fs::read_to_string(
            store
                .join("runs")
                .join(&entries(store)[0])
                .join("result.json"),
        )
        .unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for timing in [
            "wall_seconds",
            "train_seconds",
            "tokens_per_second",
            "peak_rss_bytes",
            "host",
        ] {
            v.as_object_mut().unwrap().remove(timing);
        }
        v
    };
    assert_eq!(rows(&local), rows(&cluster));
    assert!(cluster.join("studies/six/runs.parquet").is_file());
    // A second run submits nothing; the local executor finds the cluster's runs its own.
    let again = run(&c_args, &[]);
    assert!(
        stderr(&again).contains("0 trained, 6 cached"),
        "{}",
        stderr(&again)
    );
    assert_eq!(submissions(&cluster).len(), 1);
    let local_on_cluster = run(
        &[
            "run",
            s,
            "--store",
            cluster.to_str().unwrap(),
            "--no-report",
        ],
        &[],
    );
    assert!(stderr(&local_on_cluster).contains("0 trained, 6 cached"));
    // Every task's log says it trained its run, once.
    assert_eq!(log_lines(&cluster, "train-point ").len(), 6);
}

/// A study whose second run (96 steps) hangs while the flag file exists.
fn hanging_study(dir: &Path, seed: u64) -> PathBuf {
    let path = dir.join(format!("hang-{seed}.yaml"));
    let text = format!(
        "version: 1\nname: hang-{seed}\nseed: {seed}\ndata: {{ vocab: 64, order: 2 }}\n\
         model: {{ context: 16, sizes: [{{ layers: 1, d_model: 16, heads: 2 }}] }}\n\
         tokens: [1024, 6144]\ntrain: {{ batch: 4, lr: 1e-2, eval_every: 8, eval_tokens: 256 }}\n\
         trainer:\n  command: python3 fake_trainer.py --spec {{spec}} {{device}}\n  \
         version: fake/1\n  workdir: {}\n",
        root().join("tests/fixtures/trainers").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn slurm_attaches_after_a_killed_watcher_and_survives_requeue_and_cancel() {
    if !slurm_ready("slurm_attaches_after_a_killed_watcher_and_survives_requeue_and_cancel") {
        return;
    }
    let dir = fresh_dir("slurm-attach");
    let flag = dir.join("hang");
    std::fs::write(&flag, "").unwrap();
    let env = [("FAKE_HANG_FLAG", flag.as_path())];
    let store = dir.join("store");
    let st = store.to_str().unwrap();
    let study = hanging_study(&dir, 11);
    let s = study.to_str().unwrap();
    let args = [
        "run",
        s,
        "--store",
        st,
        "--executor",
        "slurm",
        "--no-report",
    ];

    // 1. The watcher is killed with SIGKILL mid-array; a second `run` attaches.
    let mut first = spawn(&args, &env, &dir.join("first.log"));
    wait_for("the submission", Duration::from_secs(60), || {
        !submissions(&store).is_empty()
    });
    let sub = submissions(&store).remove(0);
    let (job, hang) = (sub.job, sub.task_of("l1-d16-t6144"));
    wait_for("the hanging task to run", Duration::from_secs(60), || {
        task_state(job, hang) == "RUNNING"
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let mut second = spawn(&args, &env, &dir.join("second.log"));
    wait_for("the second run to attach", Duration::from_secs(30), || {
        std::fs::read_to_string(dir.join("second.log"))
            .unwrap_or_default()
            .contains(&format!("attaching to Slurm job {job}"))
    });

    // 2. The running task is requeued: it trains its run again from the start.
    let requeue = Command::new("scontrol")
        .args(["requeue", &format!("{job}_{hang}")])
        .output()
        .unwrap();
    assert!(
        requeue.status.success(),
        "{}",
        String::from_utf8_lossy(&requeue.stderr)
    );
    // Slurm holds a requeued job for two minutes; a test need not wait that long. Starting
    // it before the old attempt's credential is revoked fails it ("Job credential
    // revoked"), so it waits a few seconds first.
    let mut pending_since: Option<Instant> = None;
    wait_for(
        "the requeued task to run again",
        Duration::from_secs(90),
        || {
            let state = task_state(job, hang);
            if state == "PENDING" {
                let since = *pending_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(5) {
                    Command::new("scontrol")
                        .args(["update", &format!("jobid={job}_{hang}"), "StartTime=now"])
                        .output()
                        .unwrap();
                }
            }
            pending_since.is_some() && state == "RUNNING"
        },
    );
    std::fs::remove_file(&flag).unwrap();
    let status = wait_child(&mut second, Duration::from_secs(180));
    let log = std::fs::read_to_string(dir.join("second.log")).unwrap();
    assert!(status.success(), "{log}");
    assert_eq!(submissions(&store).len(), 1, "submitted twice:\n{log}");
    for run in ["l1-d16-t1024", "l1-d16-t6144"] {
        assert_eq!(result(&store, run)["status"], "ok", "{run}");
    }
    // The first task trained once; the requeued one again from the start, published once.
    let starts = log_lines(&store, "train-point ");
    assert_eq!(
        starts.iter().filter(|l| l.contains("l1-d16-t1024")).count(),
        1,
        "{starts:?}"
    );
    assert!(log.contains("[2/2] l1-d16-t6144: ok"), "{log}");
    assert!(!log.contains("[3/2]"), "{log}");
    let status = run(&["status", s, "--store", st], &[]);
    assert!(
        stdout(&status).contains("2 runs: 2 done"),
        "{}",
        stdout(&status)
    );

    // 3. One task cancelled with scancel: its run fails with the reason; --retry-failed
    // trains only it.
    std::fs::write(&flag, "").unwrap();
    let study = hanging_study(&dir, 12);
    let s = study.to_str().unwrap();
    let args = [
        "run",
        s,
        "--store",
        st,
        "--executor",
        "slurm",
        "--no-report",
    ];
    let mut third = spawn(&args, &env, &dir.join("third.log"));
    wait_for("the new submission", Duration::from_secs(60), || {
        submissions(&store).len() == 2
    });
    let sub = submissions(&store).pop().unwrap();
    let (third_dir, job, hang) = (sub.dir.clone(), sub.job, sub.task_of("l1-d16-t6144"));
    wait_for("the hanging task to run", Duration::from_secs(60), || {
        task_state(job, hang) == "RUNNING"
    });
    let pending = run(&["status", s, "--store", st], &[]);
    assert!(
        stdout(&pending).contains(&format!("running   {:>8}  Slurm job {job}_{hang}", "")),
        "{}",
        stdout(&pending)
    );
    Command::new("scancel")
        .arg(format!("{job}_{hang}"))
        .output()
        .unwrap();
    let status = wait_child(&mut third, Duration::from_secs(120));
    let log = std::fs::read_to_string(dir.join("third.log")).unwrap();
    assert_eq!(status.code(), Some(3), "{log}");
    let cancelled = submitted_result(&store, &third_dir, "l1-d16-t6144");
    assert_eq!(cancelled["status"], "failed");
    let reason = cancelled["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("Slurm task {job}_{hang}: cancelled")),
        "{reason}"
    );
    std::fs::remove_file(&flag).unwrap();
    let retry = run(&[&args[..], &["--retry-failed"]].concat(), &env);
    assert!(retry.status.success(), "{}", stderr(&retry));
    assert!(
        stderr(&retry).contains("1 trained, 1 cached, 0 failed"),
        "{}",
        stderr(&retry)
    );

    // 4. SIGTERM to the watcher (no terminal to ask on) cancels its array.
    std::fs::write(&flag, "").unwrap();
    let study = hanging_study(&dir, 14);
    let s = study.to_str().unwrap();
    let args = [
        "run",
        s,
        "--store",
        st,
        "--executor",
        "slurm",
        "--no-report",
    ];
    let mut fourth = spawn(&args, &env, &dir.join("fourth.log"));
    // Submissions so far: hang-11, hang-12 and its retry; this is the fourth.
    wait_for("the fourth submission", Duration::from_secs(60), || {
        submissions(&store).len() == 4
    });
    let sub = submissions(&store).pop().unwrap();
    let (fourth_dir, job, hang) = (sub.dir.clone(), sub.job, sub.task_of("l1-d16-t6144"));
    wait_for("the hanging task to run", Duration::from_secs(60), || {
        task_state(job, hang) == "RUNNING"
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(fourth.id() as i32, libc::SIGTERM) };
    let status = wait_child(&mut fourth, Duration::from_secs(60));
    let log = std::fs::read_to_string(dir.join("fourth.log")).unwrap();
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(
        log.contains(&format!("cancelled Slurm job(s) [{job}]")),
        "{log}"
    );
    let reason = submitted_result(&store, &fourth_dir, "l1-d16-t6144")["reason"].clone();
    assert!(reason.as_str().unwrap().contains("cancelled"), "{reason}");

    // 5. The training process killed with SIGKILL inside its task: the run fails with
    // the reason, the task itself ends normally.
    let study = hanging_study(&dir, 15);
    let s = study.to_str().unwrap();
    let args = [
        "run",
        s,
        "--store",
        st,
        "--executor",
        "slurm",
        "--no-report",
    ];
    let mut fifth = spawn(&args, &env, &dir.join("fifth.log"));
    wait_for("the fifth submission", Duration::from_secs(60), || {
        submissions(&store).len() == 5
    });
    let fifth_dir = submissions(&store).pop().unwrap().dir;
    let pattern = format!("{st}/runs/.partial-l1-d16-t6144");
    wait_for("the trainer to start", Duration::from_secs(60), || {
        Command::new("pkill")
            .args(["-9", "-f", &pattern])
            .status()
            .is_ok_and(|s| s.success())
    });
    let status = wait_child(&mut fifth, Duration::from_secs(60));
    let log = std::fs::read_to_string(dir.join("fifth.log")).unwrap();
    assert_eq!(status.code(), Some(3), "{log}");
    let killed = submitted_result(&store, &fifth_dir, "l1-d16-t6144");
    let reason = killed["reason"].as_str().unwrap();
    assert!(reason.contains("SIGKILL"), "{reason}");
    assert_eq!(
        submitted_result(&store, &fifth_dir, "l1-d16-t1024")["status"],
        "ok"
    );
    std::fs::remove_file(&flag).unwrap();
}

#[test]
fn a_task_past_its_time_limit_fails_with_time_limit() {
    if !slurm_ready("a_task_past_its_time_limit_fails_with_time_limit") {
        return;
    }
    let dir = fresh_dir("slurm-timeout");
    let flag = dir.join("hang");
    std::fs::write(&flag, "").unwrap();
    let study = hanging_study(&dir, 13);
    let store = dir.join("store");
    // Slurm's shortest limit is a minute; it kills within its next check after that.
    let out = run(
        &[
            "run",
            study.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            "--executor",
            "slurm",
            "--no-report",
            "--slurm-time",
            "1",
        ],
        &[("FAKE_HANG_FLAG", flag.as_path())],
    );
    let _ = std::fs::remove_file(&flag);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let r = result(&store, "l1-d16-t6144");
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.contains("time limit"), "{reason}");
    assert_eq!(result(&store, "l1-d16-t1024")["status"], "ok");
}

#[test]
fn without_slurm_a_clear_error_and_the_dry_run_still_prints_the_script() {
    let dir = fresh_dir("no-slurm");
    let study = dir.join("six.yaml");
    std::fs::write(
        &study,
        SIX.replace(
            "fits:",
            "execution:\n  slurm: { partition: gpu, mem: 2G, gres: \"gpu:1\" }\nfits:",
        ),
    )
    .unwrap();
    let store = dir.join("store");
    let (s, st) = (study.to_str().unwrap(), store.to_str().unwrap());
    let empty = dir.join("bin");
    std::fs::create_dir_all(&empty).unwrap();
    let out = run(
        &["run", s, "--store", st, "--executor", "slurm"],
        &[("PATH", empty.as_path())],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`sbatch` is not on PATH"),
        "{}",
        stderr(&out)
    );
    assert_no_crash(&stderr(&out), &study);
    // The dry run needs no Slurm: the script, with the study's options and overrides.
    let dry = run(
        &[
            "run",
            s,
            "--store",
            st,
            "--executor",
            "slurm",
            "--dry-run",
            "--jobs",
            "3",
            "--slurm-time",
            "0:30:00",
            "--slurm-arg=--constraint=a100",
        ],
        &[("PATH", empty.as_path())],
    );
    assert!(dry.status.success(), "{}", stderr(&dry));
    let script = stdout(&dry);
    for line in [
        "#SBATCH --array=0-5%3",
        "#SBATCH --partition=gpu",
        "#SBATCH --mem=2G",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --time=0:30:00",
        "#SBATCH --constraint=a100",
    ] {
        assert!(script.lines().any(|l| l == line), "{line} not in\n{script}");
    }
    assert!(
        !store.join("runs").read_dir().unwrap().any(|_| true),
        "the dry run trained"
    );
    // A Slurm that refuses the job: its own words, exit 2, nothing recorded.
    let fake = dir.join("fake");
    std::fs::create_dir_all(&fake).unwrap();
    for (name, body) in [
        (
            "sbatch",
            "echo 'sbatch: error: invalid partition specified: gpu' >&2; exit 1",
        ),
        ("scontrol", "exit 0"),
        ("scancel", "exit 0"),
    ] {
        let path = fake.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&path, perms).unwrap();
    }
    let path = format!("{}:/usr/bin:/bin", fake.display());
    let refused = run(
        &[
            "run",
            s,
            "--store",
            st,
            "--executor",
            "slurm",
            "--slurm-time",
            "5",
        ],
        &[("PATH", Path::new(&path))],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("cannot submit to Slurm: sbatch exit status: 1: sbatch: error: invalid partition specified: gpu"),
        "{}",
        stderr(&refused)
    );
    assert!(!store.join("slurm").read_dir().unwrap().any(|_| true));
    // --devices belongs to the local executor.
    let devices = run(
        &[
            "run",
            s,
            "--store",
            st,
            "--executor",
            "slurm",
            "--devices",
            "0",
        ],
        &[],
    );
    assert_eq!(devices.status.code(), Some(2));
}
