//! Which runs each array task trains. Slurm spends about half a second to a second
//! starting and ending each task (measured on the single-node cluster: 200 tasks of 0.5 s
//! on 2 CPUs took 100 s), so short runs share a task: enough tasks to fill the partition's
//! slots in whole rounds, each holding at least [`MIN_TASK_SECONDS`] of estimated work when
//! the runs are that short, balanced largest first. Runs whose time is unknown each get a
//! task of their own.

/// Estimated seconds of training a task should hold at least, when runs are short.
pub const MIN_TASK_SECONDS: f64 = 30.0;

/// Split runs with these estimated seconds into tasks (indices into `seconds`) for a
/// cluster that runs `slots` tasks at once.
pub fn bundle(seconds: &[f64], slots: usize) -> Vec<Vec<usize>> {
    let n = seconds.len();
    if seconds.iter().any(|s| !s.is_finite() || *s < 0.0) {
        return (0..n).map(|i| vec![i]).collect();
    }
    if n == 0 {
        return Vec::new();
    }
    let slots = slots.max(1);
    let total: f64 = seconds.iter().sum();
    let wanted = ((total / MIN_TASK_SECONDS).ceil() as usize).max(1);
    let tasks = (wanted.max(slots).div_ceil(slots) * slots).min(n);
    // Longest processing time first: each run to the least loaded task.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| seconds[b].total_cmp(&seconds[a]).then(a.cmp(&b)));
    let mut loads = vec![0.0f64; tasks];
    let mut out = vec![Vec::new(); tasks];
    for i in order {
        let j = (0..tasks)
            .min_by(|&x, &y| loads[x].total_cmp(&loads[y]).then(x.cmp(&y)))
            .expect("at least one task");
        out[j].push(i);
        loads[j] += seconds[i];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_runs_share_tasks_in_whole_rounds_and_long_runs_stand_alone() {
        // 200 half-second runs on 2 slots: 4 tasks of 25 s (two full rounds).
        let tasks = bundle(&[0.5; 200], 2);
        assert_eq!(tasks.len(), 4);
        assert!(tasks.iter().all(|t| t.len() == 50));
        // The same runs on a big cluster: one task each.
        assert_eq!(bundle(&[0.5; 200], 1000).len(), 200);
        // Hour-long runs never share.
        assert_eq!(bundle(&[3600.0; 6], 2).len(), 6);
        // An unknown time (an external trainer before its first run): one task each.
        assert_eq!(bundle(&[1.0, f64::NAN, 1.0], 2).len(), 3);
        // Every run in exactly one task.
        let mixed: Vec<f64> = (0..37).map(|i| (i % 7) as f64 * 3.0 + 0.1).collect();
        let mut all: Vec<usize> = bundle(&mixed, 3).into_iter().flatten().collect();
        all.sort();
        assert_eq!(all, (0..37).collect::<Vec<_>>());
        assert!(bundle(&[], 4).is_empty());
    }
}
