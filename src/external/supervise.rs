//! The supervisor between `train-point` and an external trainer (`scalebook supervise --
//! COMMAND…`): it ends the trainer's whole process tree on every exit path, so no
//! `torchrun` worker or data loader outlives its run.
//!
//! `PR_SET_PDEATHSIG` reaches only a process's direct child, and a trainer's workers may
//! leave its process group (`setsid`, a new session). So the supervisor makes itself a
//! *child subreaper* (`PR_SET_CHILD_SUBREAPER`): every descendant orphaned below it is
//! re-parented to it rather than to init, and all of them stay findable as its
//! descendants. It ends them all (SIGKILL, walking `/proc` until none is left) when the
//! trainer exits, when it is asked to stop (SIGTERM, SIGINT, SIGHUP: a time limit), and
//! when its parent dies for any reason — `kill -9` of `run` included, since `train-point`
//! dies with `run` (its own death signal) and the supervisor learns of that through its
//! death signal, SIGTERM, which it can catch. It then exits as the trainer did (the same
//! code, or the same signal), so `train-point` judges the run exactly as before; its
//! resource usage includes the trainer's (the peak memory the record keeps).

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);

/// The environment variable through which the starting process names itself.
pub const PARENT_VAR: &str = "SCALEBOOK_SUPERVISOR_PARENT";

extern "C" fn stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Run `args` under supervision; returns the exit code (or ends by the trainer's signal).
pub fn run(args: &[String]) -> i32 {
    let Some((program, rest)) = args.split_first() else {
        eprintln!("scalebook supervise: no command");
        return 2;
    };
    // The process that started this one, as it said (`train-point`'s pid): a parent that
    // died before the death signal below was set shows as another parent.
    let parent: Option<libc::pid_t> = std::env::var(PARENT_VAR).ok().and_then(|p| p.parse().ok());
    // SAFETY: plain syscalls on this process; the handler only stores to an atomic.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::signal(sig, stop as *const () as libc::sighandler_t);
        }
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
    }
    // SAFETY: getppid cannot fail.
    let first = unsafe { libc::getppid() };
    let parent = parent.unwrap_or(first);
    let parent_alive = || unsafe { libc::getppid() } == parent && parent != 1;
    if !parent_alive() {
        return 143;
    }
    let mut command = Command::new(program);
    command
        .args(rest)
        .stdin(Stdio::null())
        .env_remove(PARENT_VAR);
    // SAFETY: prctl is async-signal-safe. Should the supervisor itself be killed outright
    // (the kernel's OOM killer), the trainer goes with it.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("cannot start the trainer `{program}`: {e}");
            // As a shell says it: 127, command not found.
            return 127;
        }
    };
    let trainer = child.id() as libc::pid_t;
    let ended = loop {
        match reap(trainer) {
            Some(status) => break Some(status),
            None if STOP.load(Ordering::SeqCst) || !parent_alive() => break None,
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    end_descendants();
    match ended {
        None => 143,
        Some(status) if libc::WIFSIGNALED(status) => {
            let sig = libc::WTERMSIG(status);
            // SAFETY: restoring the default action and raising it ends this process as the
            // trainer ended.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
                libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0);
                libc::raise(sig);
            }
            128 + sig
        }
        Some(status) => libc::WEXITSTATUS(status),
    }
}

/// Reap every child that has ended (orphans re-parented here included); the trainer's
/// status once it has ended.
fn reap(trainer: libc::pid_t) -> Option<libc::c_int> {
    let mut found = None;
    loop {
        let mut status = 0;
        // SAFETY: waiting on our own children with a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return found;
        }
        if pid == trainer {
            found = Some(status);
        }
    }
}

/// SIGKILL every descendant until none is left (new ones may be forked meanwhile; each
/// killed process's children re-parent here and are found on the next pass).
fn end_descendants() {
    let me = std::process::id() as libc::pid_t;
    for _ in 0..500 {
        let _ = reap(0);
        let living = descendants(me);
        if living.is_empty() {
            return;
        }
        for pid in living {
            // SAFETY: signalling a process of our own tree.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every living (not zombie) descendant of `root`, from `/proc/*/stat`.
fn descendants(root: libc::pid_t) -> Vec<libc::pid_t> {
    let mut children: HashMap<libc::pid_t, Vec<libc::pid_t>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = after.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if state != "Z" && state != "X" {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut queue = vec![root];
    while let Some(p) = queue.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            out.push(c);
            queue.push(c);
        }
    }
    out
}
