//! Shared WSD trunks (`train.branches`): one trunk per size and learning rate trains at the
//! stable rate, and every token count branches a decay off it (Hägele et al. 2024; Hu et al.
//! 2024). A branch is a run like any other — its own key, record and curve — whose identity
//! names its trunk and the step its decay starts at.
//!
//! A branch is, bit for bit, the independent WSD run with the same warmup: the trunk only
//! saves recomputing the steps the runs of one size have in common. What differs from
//! independent runs is the warmup, which is a fraction of the trunk (the size's longest run)
//! and so the same number of steps for every branch, instead of a fraction of each run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::plan::{RunSpec, points};
use super::{Schedule, TrainSpec, TrainingPlan};
use crate::data::DataIdentity;
use crate::data::identity::hex;
use crate::model::GptConfig;
use crate::train::schedule::{LrPlan, warmup_steps, wsd_decay_steps};

/// Where a branch's state comes from; part of its identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    /// The trunk's key ([`trunk_key`], 16 hex digits): what its constant-rate phase depends
    /// on — its warmup steps, but not its length.
    pub trunk: String,
    /// The step the decay starts at: the branch starts from the trunk's model and optimizer
    /// state after this many steps.
    pub decay_start: u64,
}

/// What a trunk's numbers depend on: the run identity without its length and schedule.
#[derive(Serialize)]
struct TrunkIdentity<'a> {
    trainer: &'a str,
    model: &'a GptConfig,
    data: &'a DataIdentity,
    train: TrainSpec,
    seed: u64,
    warmup_steps: u64,
}

/// 16 hex digits naming the trunk of a run with these hyper-parameters and warmup.
pub fn trunk_key(
    trainer: &str,
    model: &GptConfig,
    data: &DataIdentity,
    train: &TrainSpec,
    seed: u64,
    warmup_steps: u64,
) -> String {
    let identity = TrunkIdentity {
        trainer,
        model,
        data,
        // Only the stable phase is shared: the schedule's decay knobs and the warmup
        // fraction (its steps are given) change branches, not the trunk.
        train: TrainSpec {
            schedule: Schedule::Constant,
            warmup: 0.0,
            ..*train
        },
        seed,
        warmup_steps,
    };
    let json = serde_json::to_string(&identity).expect("trunk identity is plain data");
    hex(&Sha256::digest(json.as_bytes()))[..16].to_string()
}

/// Steps a WSD run of `steps` spends decaying (none for other schedules).
pub fn decay_steps(train: &TrainSpec, steps: u64) -> u64 {
    match train.schedule {
        Schedule::Wsd { decay, .. } => wsd_decay_steps(decay, steps),
        _ => 0,
    }
}

/// Warmup steps of a size whose longest run takes `longest` steps: `warmup_tokens` in whole
/// steps, else the `warmup` fraction of the longest run.
pub fn shared_warmup(t: &TrainingPlan, longest: u64) -> u64 {
    match t.warmup_tokens {
        Some(tokens) => fixed_warmup(tokens, t.train.batch * t.model.context, longest),
        None => warmup_steps(&t.train, longest),
    }
}

/// `tokens` of warmup in whole steps of `step_tokens`, short of a run of `steps`.
pub fn fixed_warmup(tokens: u64, step_tokens: u64, steps: u64) -> u64 {
    ((tokens as f64 / step_tokens as f64).round() as u64).min(steps.saturating_sub(1))
}

/// One size's trunk: the step counts of its branches (ascending, distinct) and its warmup.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeTrunk {
    /// Index into the study's sizes.
    pub size: usize,
    pub steps: Vec<u64>,
    pub warmup: u64,
}

/// Every size's trunk in a study with shared trunks.
pub fn trunks_by_size(t: &TrainingPlan) -> Vec<SizeTrunk> {
    let step = t.train.batch * t.model.context;
    let mut by_size: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for (size, tokens, _, _) in points(t) {
        by_size.entry(size).or_default().push(tokens / step);
    }
    by_size
        .into_iter()
        .map(|(size, mut steps)| {
            steps.sort_unstable();
            steps.dedup();
            let longest = *steps.last().expect("a size has a point");
            SizeTrunk {
                size,
                warmup: shared_warmup(t, longest),
                steps,
            }
        })
        .collect()
}

/// Give every run its size's shared warmup and, with `branches`, make it a branch of its
/// size's trunk (keys follow).
pub fn assign(specs: &mut [RunSpec], t: &TrainingPlan) {
    // The trunk is as long as the size's longest run; its warmup a fraction of that.
    // Keyed by the whole shape: sizes that differ only in heads are sizes of their own.
    let shape = |s: &RunSpec| (s.config().layers, s.config().d_model, s.config().heads);
    let mut longest: BTreeMap<(u64, u64, u64), u64> = BTreeMap::new();
    for spec in specs.iter() {
        let steps = longest.entry(shape(spec)).or_default();
        *steps = (*steps).max(spec.steps);
    }
    for spec in specs.iter_mut() {
        let warmup = shared_warmup(t, longest[&shape(spec)]);
        spec.identity.warmup_steps = Some(warmup);
        if t.branching.is_some() {
            let id = &spec.identity;
            let trunk = trunk_key(&id.trainer, &id.model, &id.data, &id.train, id.seed, warmup);
            spec.identity.branch = Some(Branch {
                trunk,
                decay_start: LrPlan::with_warmup(&id.train, spec.steps, warmup).decay_start(),
            });
        }
        spec.key = spec.identity.key();
    }
    if t.branching.is_none() {
        return;
    }
    // Where each trunk leaves snapshots: every one of its branch points.
    let mut points: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for spec in specs.iter() {
        let b = spec.identity.branch.as_ref().expect("assigned above");
        points
            .entry(b.trunk.clone())
            .or_default()
            .push(b.decay_start);
    }
    for list in points.values_mut() {
        list.sort_unstable();
        list.dedup();
    }
    for spec in specs.iter_mut() {
        let trunk = &spec.identity.branch.as_ref().expect("assigned above").trunk;
        spec.trunk_points = points[trunk].clone();
    }
}

/// Runs grouped by trunk, each group in the order it trains: the longest branch first (it
/// trains the trunk to its end, leaving a snapshot at every branch point), then the others
/// in the order they leave the trunk (each then trains only its decay). A run that is no
/// branch is a group of its own. Groups keep the order of their first run.
pub fn by_trunk<'a>(specs: &[&'a RunSpec]) -> Vec<Vec<&'a RunSpec>> {
    let mut groups: Vec<Vec<&RunSpec>> = Vec::new();
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for spec in specs {
        match &spec.identity.branch {
            Some(b) => match index.get(b.trunk.as_str()) {
                Some(&i) => groups[i].push(spec),
                None => {
                    index.insert(&b.trunk, groups.len());
                    groups.push(vec![spec]);
                }
            },
            None => groups.push(vec![spec]),
        }
    }
    for group in &mut groups {
        group.sort_by_key(|s| {
            let b = s.identity.branch.as_ref();
            (b.map_or(0, |b| b.decay_start), s.steps, s.name.clone())
        });
        if let Some(longest) = group.pop() {
            group.insert(0, longest);
        }
    }
    groups
}

/// Estimated seconds of a trunk's group given each run's on its own: their sum scaled by
/// what sharing saves ([`cost`]).
pub fn group_seconds(group: &[&RunSpec], alone: impl Fn(&RunSpec) -> f64) -> f64 {
    let independent: f64 = group.iter().map(|s| alone(s)).sum();
    independent * cost(group).ratio()
}

/// Training FLOPs of a set of runs, trained independently and with shared trunks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    pub independent: f64,
    pub shared: f64,
}

impl Cost {
    /// Shared over independent (1 without sharing).
    pub fn ratio(&self) -> f64 {
        if self.independent > 0.0 {
            self.shared / self.independent
        } else {
            1.0
        }
    }
}

/// What training `specs` costs: each trunk's steps once (to its last branch point), plus
/// every branch's decay.
pub fn cost(specs: &[&RunSpec]) -> Cost {
    let mut cost = Cost {
        independent: 0.0,
        shared: 0.0,
    };
    for group in by_trunk(specs) {
        // Every run of a group has one shape and batch, so one step costs the same in each.
        let mut trunk = (0u64, 0.0f64);
        for spec in group {
            cost.independent += spec.flops;
            let per_step = spec.flops / spec.steps.max(1) as f64;
            match &spec.identity.branch {
                Some(b) => {
                    cost.shared += (spec.steps - b.decay_start) as f64 * per_step;
                    trunk = (trunk.0.max(b.decay_start), per_step);
                }
                None => cost.shared += spec.flops,
            }
        }
        cost.shared += trunk.0 as f64 * trunk.1;
    }
    cost
}

/// The study's points trained as independent runs with `train.compare`'s schedule and the
/// branches' warmup, for the chapter's comparison; `None` without `train.compare`. Named `<study>-independent`, with
/// no final run, checks or report of its own.
pub fn comparison(study: &super::Study) -> Option<super::Study> {
    let training = study.training()?;
    let schedule = training.branching?.compare?;
    let mut plan = training.clone();
    plan.train.schedule = schedule;
    plan.branching = None;
    // The same warmup as the branches: the comparison isolates the schedule's end.
    plan.shared_warmup = true;
    let mut other = study.clone();
    other.name = format!("{}-independent", study.name);
    other.title = format!("{} (independent runs)", study.title);
    other.source = super::Source::Train(Box::new(plan));
    other.final_run = None;
    other.checks = Vec::new();
    other.sections = Vec::new();
    Some(other)
}
