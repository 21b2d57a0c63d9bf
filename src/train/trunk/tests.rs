//! Trunks and branches: snapshots read back whole, and a branch is the run trained from
//! step 0.

use std::fs::File;
use std::path::Path;

use super::*;

use crate::record::numerics_digest;
use crate::study::{RunSpec, from_bytes, plan::plan};
use crate::train::{TrainOptions, train};

/// One size at three token counts, sharing a trunk.
fn branches() -> Vec<RunSpec> {
    branches_measuring("")
}

/// [`branches`] with `extra` (a top-level key) in the study file.
fn branches_measuring(extra: &str) -> Vec<RunSpec> {
    let text = format!(
        "version: 1\nname: br\nseed: 5\n{extra}data: {{ vocab: 64, order: 2 }}\n\
         model: {{ context: 16, sizes: [{{ layers: 1, d_model: 32, heads: 2 }}] }}\n\
         tokens: [4096, 8192, 16384]\n\
         train: {{ batch: 8, lr: 1e-2, schedule: wsd, branches: true, warmup: 0.1, \
         eval_every: 10, eval_tokens: 512 }}\n"
    );
    let study = from_bytes(text.as_bytes(), Path::new("br.yaml")).unwrap();
    plan(&study).unwrap()
}

/// A branch that continues its trunk replays the trunk's evaluations with their metrics:
/// its curve and record are the run trained from step 0, metrics and all.
#[test]
fn branches_replay_the_trunks_metrics() {
    let specs = branches_measuring("metrics: [top1, markov]\n");
    let root = crate::testing::fresh_dir("branches-metrics");
    let run = |spec: &RunSpec, trunks: Option<&Path>| {
        let options = TrainOptions {
            threads: 1,
            trunks: trunks.map(Path::to_path_buf),
        };
        train(spec, None, &options, &mut |_| {}).unwrap()
    };
    // The longest first (it trains the trunk), then the shortest from its snapshot.
    for spec in [&specs[2], &specs[0]] {
        let alone = run(spec, None);
        let shared = run(spec, Some(&root));
        let evals: Vec<_> = shared
            .curve
            .iter()
            .filter(|p| p.val_loss.is_some())
            .collect();
        assert!(evals.len() >= 3, "{}", spec.name);
        for p in &evals {
            assert!(
                p.metrics.contains_key("markov_agreement"),
                "step {}",
                p.step
            );
            assert!(p.metrics.contains_key("top1"), "step {}", p.step);
        }
        assert_eq!(
            numerics_digest(&shared.result, &shared.curve),
            numerics_digest(&alone.result, &alone.curve),
            "{}",
            spec.name
        );
        assert_eq!(shared.result.metrics, alone.result.metrics);
    }
    assert!(run(&specs[0], Some(&root)).result.computed_tokens.is_some());
}

fn digest(spec: &RunSpec, trunks: Option<&Path>) -> (String, Option<u64>) {
    let options = TrainOptions {
        threads: 1,
        trunks: trunks.map(Path::to_path_buf),
    };
    let t = train(spec, None, &options, &mut |_| {}).unwrap();
    (
        numerics_digest(&t.result, &t.curve),
        t.result.computed_tokens,
    )
}

/// Branches continued from the trunk's snapshots are the runs trained from step 0, bit for
/// bit, and each trains only the trunk's steps since the previous branch point.
#[test]
fn branches_from_snapshots_are_the_runs_trained_from_scratch() {
    let specs = branches();
    let b: Vec<_> = specs
        .iter()
        .map(|s| s.identity.branch.clone().unwrap())
        .collect();
    // One trunk, a warmup of 10 % of the longest run (128 steps) for every branch.
    assert!(b.iter().all(|x| x.trunk == b[0].trunk));
    assert!(specs.iter().all(|s| s.identity.warmup_steps == Some(13)));
    assert_eq!(
        b.iter().map(|x| x.decay_start).collect::<Vec<_>>(),
        vec![26, 51, 102]
    );
    let scratch: Vec<_> = specs.iter().map(|s| digest(s, None).0).collect();
    let root = crate::testing::fresh_dir("branches");
    let shared: Vec<_> = specs.iter().map(|s| digest(s, Some(&root))).collect();
    for (i, (d, computed)) in shared.iter().enumerate() {
        assert_eq!(d, &scratch[i], "{}", specs[i].name);
        let from = [0, 26, 51][i];
        let expected = (specs[i].steps - from) * 8 * 16;
        assert_eq!(computed.unwrap_or(specs[i].tokens()), expected);
    }
    // The longest branch first, in a fresh folder: it trains the trunk and leaves a
    // snapshot at every branch point, so each other branch trains only its decay.
    let root2 = crate::testing::fresh_dir("branches-longest");
    let (d, computed) = digest(&specs[2], Some(&root2));
    assert_eq!((d, computed), (scratch[2].clone(), None));
    for (i, start) in [(0, 26), (1, 51)] {
        let (d, computed) = digest(&specs[i], Some(&root2));
        assert_eq!(d, scratch[i]);
        assert_eq!(computed, Some((specs[i].steps - start) * 128));
    }
    // Without the later snapshots the last branch continues from the first one.
    for step in [51, 102] {
        fs::remove_file(root.join(&b[0].trunk).join(snapshot_name(step))).unwrap();
    }
    let (d, computed) = digest(&specs[2], Some(&root));
    assert_eq!(d, scratch[2]);
    assert_eq!(computed, Some((128 - 26) * 128));
}

#[test]
fn a_snapshot_reads_back_bit_for_bit_and_a_damaged_one_not_at_all() {
    let root = crate::testing::fresh_dir("trunk");
    let trunk = "0123456789abcdef";
    let dir = TrunkDir::open(root.as_path(), trunk).unwrap();
    let params = vec![1.5f32, -0.0, f32::MIN_POSITIVE];
    let (m, v) = (vec![0.25f32; 3], vec![1e-30f32; 3]);
    let log = TrunkLog {
        losses: vec![4.0, f64::NAN, 3.5],
        seconds: vec![0.1, 0.2, 0.3],
        evals: vec![(2, 3.75)],
        eval_metrics: Vec::new(),
    };
    let state = EngineState {
        params: &params,
        m: &m,
        v: &v,
        t: 3,
    };
    dir.save(3, &state, &log).unwrap();
    let back = dir.latest(10, 3).unwrap();
    assert_eq!(back.step, 3);
    assert_eq!(back.t, 3);
    assert_eq!(back.params[1].to_bits(), (-0.0f32).to_bits());
    assert_eq!(back.v, v);
    assert!(back.log.losses[1].is_nan());
    assert_eq!(back.log.evals, log.evals);
    assert!(back.log.eval_metrics.is_empty());
    // Not before its step, not for another shape.
    assert!(dir.latest(2, 3).is_none());
    assert!(dir.latest(3, 4).is_none());
    // With the evaluations' metrics: they read back too, and a mismatched count not at all.
    let mut with = log.clone();
    with.eval_metrics = vec![Metrics::from([("top1".to_string(), 0.25)])];
    dir.save(3, &state, &with).unwrap();
    assert_eq!(
        dir.latest(10, 3).unwrap().log.eval_metrics,
        with.eval_metrics
    );
    with.eval_metrics.push(Metrics::new());
    dir.save(3, &state, &with).unwrap();
    assert!(dir.latest(10, 3).is_none());
    dir.save(3, &state, &log).unwrap();
    // One flipped byte: ignored.
    let path = root.as_path().join(trunk).join(snapshot_name(3));
    let mut bytes = fs::read(&path).unwrap();
    bytes[40] ^= 1;
    fs::write(&path, &bytes).unwrap();
    assert!(dir.latest(10, 3).is_none());
    // Held by `dir`: pruning waits for another time.
    assert!(!remove_trunk(root.as_path(), trunk));
    drop(dir);
    let waiting = File::open(root.as_path().join(trunk).join("lock")).unwrap();
    assert!(remove_trunk(root.as_path(), trunk));
    assert!(snapshot_steps(&root.as_path().join(trunk)).is_empty());
    // The lock file stays: a process that opened it before the removal and one that
    // opens it after lock the same file, never two.
    let after = File::open(root.as_path().join(trunk).join("lock")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        waiting.metadata().unwrap().ino(),
        after.metadata().unwrap().ino()
    );
}
