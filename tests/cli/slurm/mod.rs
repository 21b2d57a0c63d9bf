//! The Slurm executor against a real single-node Slurm (`.ci/run` starts one with
//! `../shared/slurm/start-slurm.sh`): the same bits as the local executor, attach instead of
//! resubmit, cancel, requeue, time limits, and the errors of a machine without Slurm.

mod hostile;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use support::*;

use crate::support::{assert_no_crash, fresh_dir, root, stderr, stdout};

pub(super) const SIX: &str = "\
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
    // A store whose path has spaces and quotes: the tasks still find it and log into it.
    let (local, cluster) = (dir.join("local"), dir.join("clu ster 'q'"));
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
    // Every task logged into its submission's folder, under the quoted store.
    let logs: Vec<_> = std::fs::read_dir(cluster.join("slurm"))
        .unwrap()
        .filter_map(|e| std::fs::read_dir(e.unwrap().path().join("logs")).ok())
        .flatten()
        .collect();
    assert!(!logs.is_empty(), "no task log under {}", cluster.display());
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

/// A hanging study started through Slurm in the background.
struct Hanging {
    child: Child,
    sub: Sub,
    /// The array task of the hanging run.
    task: usize,
    log: PathBuf,
    args: Vec<String>,
}

impl Hanging {
    /// Start `hanging_study(seed)` on `store` — the store's `nth` submission — and wait for
    /// its hanging run's task to run.
    fn start(dir: &Path, store: &Path, seed: u64, flag: &Path, nth: usize) -> Hanging {
        let study = hanging_study(dir, seed);
        let args: Vec<String> = [
            "run",
            study.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            "--executor",
            "slurm",
            "--no-report",
        ]
        .map(String::from)
        .to_vec();
        let log = dir.join(format!("watcher-{seed}.log"));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = spawn(&argv, &[("FAKE_HANG_FLAG", flag)], &log);
        wait_for("the submission", Duration::from_secs(60), || {
            submissions(store).len() == nth
        });
        let sub = submissions(store).pop().unwrap();
        let task = sub.task_of("l1-d16-t6144");
        wait_for("the hanging task to run", Duration::from_secs(60), || {
            task_state(sub.job, task) == "RUNNING"
        });
        Hanging {
            child,
            sub,
            task,
            log,
            args,
        }
    }

    /// Wait for the watcher; its exit code and log.
    fn finish(&mut self) -> (Option<i32>, String) {
        let status = wait_child(&mut self.child, Duration::from_secs(180));
        (status.code(), std::fs::read_to_string(&self.log).unwrap())
    }

    fn result(&self, store: &Path, run: &str) -> serde_json::Value {
        submitted_result(store, &self.sub.dir, run)
    }
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

    // 1. The watcher is killed with SIGKILL mid-array; a second `run` attaches.
    let mut first = Hanging::start(&dir, &store, 11, &flag, 1);
    let (job, hang) = (first.sub.job, first.task);
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    // As if it had been killed between `sbatch` and saving the job id: the array is found
    // by its name, not deleted.
    let saved = first.sub.dir.join("submission.json");
    let mut submission: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    submission["job_id"] = serde_json::Value::Null;
    std::fs::write(&saved, submission.to_string()).unwrap();
    let argv: Vec<&str> = first.args.iter().map(String::as_str).collect();
    let mut second = spawn(&argv, &env, &dir.join("second.log"));
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
    assert!(requeue.status.success(), "{requeue:?}");
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
        assert_eq!(first.result(&store, run)["status"], "ok", "{run}");
    }
    // The first task trained once; the requeued one again from the start, published once.
    let starts = log_lines(&store, "train-point ");
    let once = starts.iter().filter(|l| l.contains("l1-d16-t1024")).count();
    assert_eq!(once, 1, "{starts:?}");
    assert!(log.contains("[2/2] l1-d16-t6144: ok"), "{log}");
    assert!(!log.contains("[3/2]"), "{log}");
    let status = run(&["status", &first.args[1], "--store", st], &[]);
    assert!(
        stdout(&status).contains("2 runs: 2 done"),
        "{}",
        stdout(&status)
    );

    // 3. One task cancelled with scancel: its run fails with the reason; --retry-failed
    // trains only it. While it runs, `status` names its Slurm task.
    std::fs::write(&flag, "").unwrap();
    let mut third = Hanging::start(&dir, &store, 12, &flag, 2);
    let (job, hang) = (third.sub.job, third.task);
    // Slurm says RUNNING a moment before the task's trainer holds the run's lock; until it
    // does, `status` says the run is pending on that task.
    let running = format!("running   {:>8}  Slurm job {job}_{hang}", "");
    let pending = format!("pending   {:>8}  Slurm job {job}_{hang}", "");
    wait_for(
        "status to name the running task",
        Duration::from_secs(30),
        || {
            let now = stdout(&run(&["status", &third.args[1], "--store", st], &[]));
            assert!(now.contains(&running) || now.contains(&pending), "{now}");
            now.contains(&running)
        },
    );
    Command::new("scancel")
        .arg(format!("{job}_{hang}"))
        .output()
        .unwrap();
    let (code, log) = third.finish();
    assert_eq!(code, Some(3), "{log}");
    let cancelled = third.result(&store, "l1-d16-t6144");
    assert_eq!(cancelled["status"], "failed");
    let reason = cancelled["reason"].as_str().unwrap();
    let expected = format!("Slurm task {job}_{hang}: cancelled");
    assert!(reason.contains(&expected), "{reason}");
    std::fs::remove_file(&flag).unwrap();
    let argv: Vec<&str> = third.args.iter().map(String::as_str).collect();
    let retry = run(&[&argv[..], &["--retry-failed"]].concat(), &env);
    assert!(retry.status.success(), "{}", stderr(&retry));
    let trained = "1 trained, 1 cached, 0 failed";
    assert!(stderr(&retry).contains(trained), "{}", stderr(&retry));

    // 4. SIGTERM to the watcher (no terminal to ask on) cancels its array. Submissions so
    // far: hang-11, hang-12 and its retry; this is the fourth.
    std::fs::write(&flag, "").unwrap();
    let mut fourth = Hanging::start(&dir, &store, 14, &flag, 4);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(fourth.child.id() as i32, libc::SIGTERM) };
    let (code, log) = fourth.finish();
    assert_eq!(code, Some(3), "{log}");
    let said = format!("cancelled Slurm job(s) [{}]", fourth.sub.job);
    assert!(log.contains(&said), "{log}");
    let reason = fourth.result(&store, "l1-d16-t6144")["reason"].clone();
    assert!(reason.as_str().unwrap().contains("cancelled"), "{reason}");

    // 5. The training process killed with SIGKILL inside its task: the run fails with
    // the reason, the task itself ends normally.
    let mut fifth = Hanging::start(&dir, &store, 15, &flag, 5);
    let pattern = format!("{st}/runs/.partial-l1-d16-t6144");
    wait_for("the trainer to be killed", Duration::from_secs(60), || {
        Command::new("pkill")
            .args(["-9", "-f", &pattern])
            .status()
            .is_ok_and(|s| s.success())
    });
    let (code, log) = fifth.finish();
    assert_eq!(code, Some(3), "{log}");
    let killed = fifth.result(&store, "l1-d16-t6144");
    let reason = killed["reason"].as_str().unwrap();
    assert!(reason.contains("SIGKILL"), "{reason}");
    assert_eq!(fifth.result(&store, "l1-d16-t1024")["status"], "ok");
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
        // Six short runs, three at a time (no `sinfo` here to say more): three tasks.
        "#SBATCH --array=0-2%3",
        "#SBATCH --partition=gpu",
        "#SBATCH --mem=2G",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --time=0:30:00",
        "#SBATCH --constraint=a100",
    ] {
        assert!(script.lines().any(|l| l == line), "{line} not in\n{script}");
    }
    let listed: usize = script
        .lines()
        .filter_map(|l| l.strip_prefix("# task "))
        .map(|l| l.split_whitespace().count() - 1)
        .sum();
    assert_eq!(listed, 6, "{script}");
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
    // Slurm options without the Slurm executor are a mistake, not a local run.
    let stray = run(&["run", s, "--store", st, "--slurm-time", "5"], &[]);
    assert_eq!(stray.status.code(), Some(2), "{}", stderr(&stray));
    assert!(stderr(&stray).contains("apply to `--executor slurm`"));
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

/// A study sharing WSD trunks on the cluster: each trunk's branches are one task, the trunk
/// trains once, and every branch is the local run bit for bit.
#[test]
fn a_trunk_and_its_branches_are_one_task_with_the_local_bits() {
    if !slurm_ready("a_trunk_and_its_branches_are_one_task_with_the_local_bits") {
        return;
    }
    let dir = fresh_dir("slurm-branches");
    let study = dir.join("branched.yaml");
    let text = SIX.replace("name: six", "name: branched").replace(
        "eval_every: 16",
        "schedule: wsd, branches: true, eval_every: 16",
    );
    std::fs::write(&study, text).unwrap();
    // A store whose path has spaces and quotes: the tasks still find it and log into it.
    let (local, cluster) = (dir.join("local"), dir.join("clu ster 'q'"));
    let s = study.to_str().unwrap();
    let common = ["--no-report", "--threads-per-job", "1"];
    let store_args = |store: &Path| -> Vec<String> {
        ["run", s, "--store", store.to_str().unwrap()]
            .iter()
            .chain(&common)
            .map(|a| a.to_string())
            .collect()
    };
    let l = run(
        &store_args(&local)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &[],
    );
    assert!(l.status.success(), "{}", stderr(&l));
    let mut c_args = store_args(&cluster);
    c_args.extend(["--executor".into(), "slurm".into()]);
    let c = run(&c_args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(c.status.success(), "{}", stderr(&c));
    assert!(
        stderr(&c).contains("6 trained, 0 cached, 0 failed"),
        "{}",
        stderr(&c)
    );
    let sub = &submissions(&cluster)[0];
    for size in ["l1-d16", "l1-d32"] {
        let tasks: Vec<usize> = ["t2048", "t4096", "t8192"]
            .iter()
            .map(|t| sub.task_of(&format!("{size}-{t}")))
            .collect();
        assert!(tasks.iter().all(|t| *t == tasks[0]), "{size}: {tasks:?}");
    }
    let mut entries: Vec<String> = std::fs::read_dir(local.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 6);
    let mut computed = 0;
    for entry in &entries {
        assert_eq!(numbers(&local, entry), numbers(&cluster, entry), "{entry}");
        let r = result(&cluster, &entry[..entry.len() - 13]);
        computed += r["computed_tokens"]
            .as_u64()
            .unwrap_or(r["tokens_trained"].as_u64().unwrap());
    }
    // Per size: the trunk to the longest branch's decay (step 51 of 64) and three decays
    // (3, 6 and 13 steps), 128 tokens a step.
    assert_eq!(computed, 2 * (51 + 3 + 6 + 13) * 128);
    // The snapshots are gone with the branches done (each trunk keeps its lock file).
    let left: usize = std::fs::read_dir(cluster.join("trunks"))
        .map(|d| {
            d.flatten()
                .flat_map(|t| std::fs::read_dir(t.path()).into_iter().flatten().flatten())
                .filter(|f| f.file_name().to_string_lossy().ends_with(".snap"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(left, 0);
}

/// Learning-rate transfer on Slurm: the sweep is one array; once its records are in, the
/// runs it decides are a second array, and the transferred run trains at the sweep's best
/// rate (here the only size not swept, at each token count).
#[test]
fn transferred_runs_are_a_second_array_after_the_sweep() {
    if !slurm_ready("transferred_runs_are_a_second_array_after_the_sweep") {
        return;
    }
    let dir = fresh_dir("slurm-transfer");
    let study = dir.join("transfer.yaml");
    let text = SIX
        .replace("name: six", "name: transfer")
        .replace(
            "  context: 16\n",
            "  context: 16\n  parametrization: mup\n  base_width: 16\n",
        )
        .replace("tokens: [2048, 4096, 8192]", "tokens: [2048, 4096]")
        .replace(
            "lr: 1e-2,",
            "lr: [5e-3, 1e-2, 2e-2], lr_transfer: { sweep: [l1-d16] },",
        );
    std::fs::write(&study, text).unwrap();
    let store = dir.join("store");
    let s = study.to_str().unwrap();
    let out = run(
        &[
            "run",
            s,
            "--store",
            store.to_str().unwrap(),
            "--no-report",
            "--threads-per-job",
            "1",
            "--executor",
            "slurm",
        ],
        &[],
    );
    let err = stderr(&out);
    assert_no_crash(&err, &study);
    assert!(out.status.success(), "{err}");
    let subs = submissions(&store);
    assert_eq!(subs.len(), 2, "{err}");
    assert_eq!(subs[0].runs.len(), 6, "the sweep: 2 token counts × 3 rates");
    assert_eq!(
        subs[1].runs.len(),
        2,
        "the transferred width at 2 token counts"
    );
    assert!(
        subs[1].runs.iter().all(|r| r.starts_with("l1-d32-t")),
        "{:?}",
        subs[1].runs
    );
    assert!(
        err.contains("learning rates decided by the sweep: l1-d32-t2048 at "),
        "{err}"
    );
    assert!(err.contains("8 trained, 0 cached, 0 failed"), "{err}");
    for r in &subs[1].runs {
        assert_eq!(result(&store, r)["status"], "ok", "{r}");
    }
}
