//! Sweep expansion: a [`Study`] becomes the list of runs to train, each with its identity
//! and content key (DESIGN.md "Run identity and store").
//!
//! A run's key hashes only what changes its result — model shape, trained tokens, data
//! identity, training hyper-parameters, seed and trainer version — so editing report text,
//! titles or display names never retrains anything.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use super::isoflop::{BudgetExpansion, ShortBudget, expand_budget};
use super::units::compact_count;
use super::{ModelSpec, Study, Sweep, TrainSpec, TrainingPlan};
use crate::data::identity::{DataReadError, hex};
use crate::data::{DataIdentity, DataSpec};
use crate::model::accounting::flops_6nd;
use crate::model::{GptConfig, ParamCounts, param_counts, train_flops_per_token};

/// Version of the trainer's numerics; part of every key. Bump when training changes results.
/// 2: fused GELU (same mathematics, different rounding). 3: the CPU engine (`model::cpu`).
pub const TRAINER_VERSION: &str = "scalebook-gpt/3";

/// The engine's numbers under [`TRAINER_VERSION`]: the [`crate::record::numerics_digest`] of
/// the golden run (`tests/fixtures/valid/golden.yaml`) per instruction-set path
/// ([`crate::isa::path`]), for the paths measured so far. The golden test fails when the
/// engine's numbers move: bump `TRAINER_VERSION` with them and put the new digests here.
pub const TRAINER_GOLDEN: &[(&str, &str)] = &[
    ("x86_64-avx512", "21071bbe8274da20"),
    ("x86_64-avx512-kernels-avx2", "21071bbe8274da20"),
    ("x86_64-avx512-kernels-baseline", "21071bbe8274da20"),
];

/// `isoflop.sizes: auto` keeps sizes whose tokens per (total) parameter lie in this range: a
/// bracket around Hoffmann et al. 2022's ~20 tokens per parameter wide enough that each
/// budget's parabola has its minimum inside the sampled sizes.
pub const ISOFLOP_AUTO_TPP: (f64, f64) = (2.0, 200.0);

/// Producers whose identity starts with this are the mock executor: numbers from a law,
/// nothing trained.
pub const MOCK_PRODUCER_PREFIX: &str = "mock/";

/// Whether a run's producer is the mock executor.
pub fn is_mock_producer(producer: &str) -> bool {
    producer.starts_with(MOCK_PRODUCER_PREFIX)
}

/// What about a run changes its result; hashed into its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// What produced the numbers: the engine with its [`TRAINER_VERSION`], or the mock with
    /// its law (`mock/E=…`). Never where or how it ran (executor, threads, host), so a run
    /// trained locally and on a cluster is one entry.
    pub trainer: String,
    pub model: GptConfig,
    /// Tokens actually trained (whole steps).
    pub tokens: u64,
    pub data: DataIdentity,
    pub train: TrainSpec,
    pub seed: u64,
    /// Warmup in steps, when it is not the `warmup` fraction of the run's own steps: runs
    /// sharing a trunk, and the independent runs compared with them, warm up as long as the
    /// size's longest run (see [`super::branches`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<u64>,
    /// A decay branch of a shared WSD trunk: which trunk, and from which step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<super::branches::Branch>,
    /// The metrics measured at every evaluation (the study's `metrics:`, by name), sorted;
    /// absent without them, so a study that asks for none keeps its keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<String>,
    /// The task files every evaluation scores (the study's `tasks:`), by name, scoring and
    /// content hash; absent without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<super::tasks::TaskIdentity>,
}

impl RunIdentity {
    /// sha256 over the identity's canonical JSON (fields in declaration order, shortest
    /// round-trip floats), hex.
    pub fn key(&self) -> String {
        let json = serde_json::to_string(self).expect("run identity is plain data");
        hex(&Sha256::digest(json.as_bytes()))
    }
}

/// One run to train: everything `scalebook train-point` needs, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Full content key (64 hex digits).
    pub key: String,
    /// Readable name from the shape and the requested tokens (`l4-d128-t1e6`) or IsoFLOP
    /// budget (`l4-d128-c1e15`); the exact trained tokens are in the identity.
    pub name: String,
    /// The (size, tokens) point: the name without a learning-rate suffix (runs of one point
    /// differ only in hyper-parameters; the fits use the best of them). Empty in specs
    /// written before sweeps existed: see [`RunSpec::point`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub point: String,
    /// The size's display name from the study (not part of the identity).
    pub size_name: String,
    /// Compute budget this run belongs to (IsoFLOP sweeps).
    pub budget: Option<f64>,
    pub steps: u64,
    pub params: ParamCounts,
    /// Exact training FLOPs ([`train_flops_per_token`] × tokens).
    pub flops: f64,
    /// Kaplan et al. 2020's 6·N_non_embedding·D.
    pub flops_6nd: f64,
    pub identity: RunIdentity,
    /// Where the data lives (the identity holds only its content hash).
    pub data: DataSpec,
    /// Entropy rate of the synthetic language and its standard error, computed once at plan
    /// time (not part of the identity; None for files).
    pub data_entropy: Option<(f64, f64)>,
    /// The external command that trains this run (its producer is in the identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<super::trainer::ExternalTrainer>,
    /// A branch: the steps where every branch of its trunk in the plan leaves it, where a
    /// process training the trunk leaves a snapshot (not part of the identity).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trunk_points: Vec<u64>,
    /// Where the task files of `identity.tasks` are (not part of the identity).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<super::tasks::TaskSpec>,
}

impl RunSpec {
    pub fn config(&self) -> &GptConfig {
        &self.identity.model
    }

    pub fn tokens(&self) -> u64 {
        self.identity.tokens
    }

    /// Its parameter count N in a law's convention.
    pub fn n(&self, params: super::ParamsConvention) -> f64 {
        match params {
            super::ParamsConvention::Total => self.params.total as f64,
            super::ParamsConvention::NonEmbedding => self.params.non_embedding as f64,
        }
    }

    /// The (size, tokens) point this run belongs to.
    pub fn point(&self) -> &str {
        if self.point.is_empty() {
            &self.name
        } else {
            &self.point
        }
    }

    /// Store directory name: readable part plus 12 hex digits of the key.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.name, &self.key[..12])
    }

    /// Whether the key matches the identity (a hand-edited spec file does not).
    pub fn key_is_consistent(&self) -> bool {
        self.identity.key() == self.key
    }

    /// Whether the mock executor produced (or will produce) this run.
    pub fn is_mock(&self) -> bool {
        is_mock_producer(&self.identity.trainer)
    }

    /// Whether an external command trains this run.
    pub fn is_external(&self) -> bool {
        super::trainer::is_external_producer(&self.identity.trainer)
    }

    /// The run's learning-rate schedule (a branch warms up as long as its trunk).
    pub fn lr_plan(&self) -> crate::train::schedule::LrPlan {
        use crate::train::schedule::LrPlan;
        let train = &self.identity.train;
        match self.identity.warmup_steps {
            Some(w) => LrPlan::with_warmup(train, self.steps, w),
            None => LrPlan::independent(train, self.steps),
        }
    }
}

/// `1e13`, `2.5e14`: a budget in a folder-safe form.
pub(crate) fn compact_real(value: f64) -> String {
    format!("{value:e}").replace('+', "")
}

/// Steps for a token count: nearest whole number of steps, at least one.
pub fn steps_for(tokens: u64, step_tokens: u64) -> u64 {
    ((tokens as f64 / step_tokens as f64).round() as u64).max(1)
}

pub(crate) fn gpt_config(model: &ModelSpec, index: usize, vocab: u64) -> GptConfig {
    let s = &model.sizes[index];
    GptConfig {
        layers: s.layers,
        d_model: s.d_model,
        heads: s.heads,
        context: model.context,
        vocab,
        tie_embeddings: model.tie_embeddings,
        parametrization: model.parametrization,
    }
}

/// Every run of a training study, ordered by size then tokens. Reads data files to hash them.
pub fn plan(study: &Study) -> Result<Vec<RunSpec>, DataReadError> {
    let Some(training) = study.training() else {
        return Ok(Vec::new());
    };
    let data = training.data.identity()?;
    Ok(runs(study.seed, training, &data))
}

/// Fill in the synthetic language's entropy rate (sampled: ~0.1 s, so only when needed).
pub fn add_entropy(study: &Study, specs: &mut [RunSpec]) {
    let Some(training) = study.training() else {
        return;
    };
    if specs.is_empty() {
        return;
    }
    let entropy = training.data.entropy(study.seed);
    for spec in specs {
        spec.data_entropy = entropy;
    }
}

/// The spec of one run of shape `model` trained on `tokens` (a whole number of steps), named
/// `<shape>-<label>`.
#[allow(clippy::too_many_arguments)]
pub fn run_spec(
    seed: u64,
    t: &TrainingPlan,
    data: &DataIdentity,
    model: GptConfig,
    size_name: &str,
    tokens: u64,
    budget: Option<f64>,
    label: &str,
) -> RunSpec {
    let step = t.train.batch * t.model.context;
    let params = param_counts(&model);
    let steps = tokens / step;
    let identity = RunIdentity {
        trainer: t.producer.clone(),
        model,
        tokens,
        data: data.clone(),
        train: t.train,
        seed,
        warmup_steps: t
            .warmup_tokens
            .map(|w| super::branches::fixed_warmup(w, step, steps)),
        branch: None,
        metrics: t.metrics.clone(),
        tasks: t.tasks.iter().map(|t| t.identity.clone()).collect(),
    };
    let name = format!("{}-{label}", model.short_name());
    RunSpec {
        key: identity.key(),
        point: name.clone(),
        name,
        size_name: size_name.to_string(),
        budget,
        steps,
        params,
        flops: train_flops_per_token(&model) * tokens as f64,
        flops_6nd: flops_6nd(params.non_embedding, tokens),
        identity,
        data: t.data.clone(),
        data_entropy: None,
        external: t.external.clone(),
        trunk_points: Vec::new(),
        tasks: t.tasks.clone(),
    }
}

/// One (size, tokens) point of a sweep: the size's index, the trained tokens (whole steps),
/// the IsoFLOP budget and the point's readable label.
pub(crate) type Point = (usize, u64, Option<f64>, String);

/// The sweep's points, in sweep order.
pub(crate) fn points(t: &TrainingPlan) -> Vec<Point> {
    let vocab = DataSpec::vocab(&t.data);
    let step = t.step_tokens();
    let mut points: Vec<Point> = Vec::new();
    match &t.sweep {
        Sweep::Grid { tokens } => {
            for index in 0..t.model.sizes.len() {
                for &d in tokens {
                    let label = format!("t{}", compact_count(d));
                    points.push((index, steps_for(d, step) * step, None, label));
                }
            }
        }
        Sweep::IsoFlop { budgets, sizes } => {
            for &c in budgets {
                let expansion = expand_budget(c, &t.model, vocab, &t.batch_sizes, *sizes);
                let label = format!("c{}", compact_real(c));
                points.extend(
                    expansion
                        .points
                        .into_iter()
                        .map(|(i, d)| (i, d, Some(c), label.clone())),
                );
            }
        }
    }
    points
}

/// Every (learning rate, batch size) a swept point trains at: each learning rate with each
/// batch size (the envelope is then over the pairs).
pub(crate) fn hyper_pairs(t: &TrainingPlan) -> Vec<(f64, u64)> {
    t.learning_rates
        .iter()
        .flat_map(|&lr| t.batch_sizes.iter().map(move |&b| (lr, b)))
        .collect()
}

pub(crate) fn runs(seed: u64, t: &TrainingPlan, data: &DataIdentity) -> Vec<RunSpec> {
    let vocab = DataSpec::vocab(&t.data);
    // One run per point, learning rate and batch size; a sweep's runs are named
    // `<point>-lr<η>`, `<point>-b<B>` or `<point>-lr<η>-b<B>`.
    let lr_swept = t.learning_rates.len() > 1;
    let batch_swept = t.batch_sizes.len() > 1;
    let shared = super::naming::shared_shape_names(&t.model);
    let mut specs: Vec<RunSpec> = Vec::new();
    for (index, tokens, budget, label) in points(t) {
        // Under `lr_transfer`, a size that does not sweep trains after the sweep, at the
        // learning rate the sweep gives it ([`super::transfer`]).
        if t.transfer.as_ref().is_some_and(|x| !x.sweeps(index)) {
            continue;
        }
        let model = gpt_config(&t.model, index, vocab);
        for (lr, batch) in hyper_pairs(t) {
            let at = TrainingPlan {
                train: TrainSpec {
                    lr,
                    batch,
                    ..t.train
                },
                ..t.clone()
            };
            let size = &t.model.sizes[index].name;
            let mut spec = run_spec(seed, &at, data, model, size, tokens, budget, &label);
            if shared.contains(&index) {
                // Sizes that differ only in heads: the heads join the name, so no two
                // points share one (names of other sizes are as they always were).
                spec.point = format!("{}-h{}-{label}", model.short_name(), model.heads);
                spec.name = spec.point.clone();
            }
            if lr_swept {
                spec.name = format!("{}-lr{}", spec.point, compact_real(lr));
            }
            if batch_swept {
                spec.name = format!("{}-b{batch}", spec.name);
            }
            specs.push(spec);
        }
    }
    specs.sort_by(|a, b| {
        (
            a.params.non_embedding,
            a.tokens(),
            a.budget.unwrap_or(0.0).to_bits(),
            a.identity.train.lr.to_bits(),
            a.identity.train.batch,
        )
            .cmp(&(
                b.params.non_embedding,
                b.tokens(),
                b.budget.unwrap_or(0.0).to_bits(),
                b.identity.train.lr.to_bits(),
                b.identity.train.batch,
            ))
    });
    if t.branching.is_some() || (t.shared_warmup && t.warmup_tokens.is_none()) {
        super::branches::assign(&mut specs, t);
    }
    // Two budgets can round one size to the same tokens; that is one run, not two.
    specs.dedup_by(|a, b| a.key == b.key);
    super::naming::disambiguate(&mut specs);
    specs
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use super::*;
    use crate::study::from_bytes;

    pub(crate) const BASE: &str = "\
version: 1
name: keys
title: Keys
seed: 1
model:
  context: 64
  sizes:
    - { layers: 2, d_model: 32, heads: 2, name: tiny }
    - { layers: 2, d_model: 64, heads: 4 }
tokens: [1e5, 2e5]
train: { batch: 8, lr: 3e-3 }
report:
  sections:
    - text: hello
";

    pub(crate) fn keys(text: &str) -> Vec<String> {
        let study = from_bytes(text.as_bytes(), Path::new("keys.yaml")).unwrap();
        plan(&study).unwrap().into_iter().map(|r| r.key).collect()
    }

    #[test]
    fn grid_expands_sizes_times_tokens_in_whole_steps() {
        let study = from_bytes(BASE.as_bytes(), Path::new("keys.yaml")).unwrap();
        let runs = plan(&study).unwrap();
        assert_eq!(runs.len(), 4);
        // 1e5 / (8 × 64) = 195.3 → 195 steps = 99,840 tokens.
        assert_eq!(runs[0].tokens(), 99_840);
        assert_eq!(runs[0].steps, 195);
        assert_eq!(runs[0].name, "l2-d32-t1e5");
        assert_eq!(runs[0].size_name, "tiny");
        assert_eq!(runs[0].dir_name().len(), runs[0].name.len() + 13);
    }

    /// Sizes that differ only in heads share no run name and no sweep point: the heads join
    /// their names (only theirs: the other sizes keep theirs, and every key stays).
    #[test]
    fn sizes_differing_only_in_heads_get_names_of_their_own() {
        let text = BASE
            .replace(
                "- { layers: 2, d_model: 64, heads: 4 }",
                "- { layers: 2, d_model: 64, heads: 4 }\n    - { layers: 2, d_model: 64, heads: 8 }",
            )
            .replace("lr: 3e-3", "lr: [1e-3, 3e-3, 1e-2]");
        let study = from_bytes(text.as_bytes(), Path::new("keys.yaml")).unwrap();
        let runs = plan(&study).unwrap();
        assert_eq!(runs.len(), 18);
        let mut names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 18, "{names:?}");
        let mut points: Vec<&str> = runs.iter().map(|r| r.point()).collect();
        points.sort();
        points.dedup();
        assert_eq!(points.len(), 6, "{points:?}");
        assert!(names.contains(&"l2-d64-h4-t1e5-lr1e-3"), "{names:?}");
        assert!(names.contains(&"l2-d64-h8-t2e5-lr1e-2"), "{names:?}");
        assert!(names.contains(&"l2-d32-t1e5-lr1e-3"), "{names:?}");
        // The sweep's envelope has a point per (size, tokens).
        let sweep: Vec<crate::fit::hyper::SweepRun> = runs
            .iter()
            .map(|r| crate::fit::hyper::SweepRun {
                name: r.name.clone(),
                point: r.point().to_string(),
                n: r.params.total as f64,
                d: r.tokens() as f64,
                lr: r.identity.train.lr,
                batch: r.identity.train.batch,
                batch_tokens: (r.identity.train.batch * r.identity.model.context) as f64,
                flops: r.flops,
                loss: Some(3.0 + r.identity.train.lr),
            })
            .collect();
        assert_eq!(crate::fit::hyper::envelope(&sweep).len(), 6);
    }

    /// A learning-rate list trains every point at each value: one lr of the list keeps the
    /// key it had as a single lr, so adding values trains only the new runs.
    #[test]
    fn a_learning_rate_sweep_adds_runs_and_keeps_existing_keys() {
        let base = keys(BASE);
        let swept = BASE.replace("lr: 3e-3", "lr: [1e-3, 3e-3, \"1e-2\"]");
        let study = from_bytes(swept.as_bytes(), Path::new("keys.yaml")).unwrap();
        let runs = plan(&study).unwrap();
        assert_eq!(runs.len(), 12);
        assert!(base.iter().all(|k| runs.iter().any(|r| &r.key == k)));
        assert_eq!(runs[0].name, "l2-d32-t1e5-lr1e-3");
        assert_eq!(runs[0].point(), "l2-d32-t1e5");
        assert_eq!(runs[2].name, "l2-d32-t1e5-lr1e-2");
        let lrs: Vec<f64> = runs[..3].iter().map(|r| r.identity.train.lr).collect();
        assert_eq!(lrs, vec![1e-3, 3e-3, 1e-2]);
        // Without a sweep, names carry no suffix and the point is the name.
        let plain = plan(&from_bytes(BASE.as_bytes(), Path::new("keys.yaml")).unwrap()).unwrap();
        assert_eq!(plain[0].point(), plain[0].name);
    }

    #[test]
    fn presentation_edits_keep_keys() {
        let base = keys(BASE);
        for edited in [
            BASE.replace("title: Keys", "title: Something else"),
            BASE.replace("name: keys", "name: renamed"),
            BASE.replace("name: tiny", "name: small"),
            BASE.replace("text: hello", "text: goodbye"),
        ] {
            assert_eq!(keys(&edited), base, "{edited}");
        }
    }

    #[test]
    fn result_edits_change_every_affected_key() {
        let base = keys(BASE);
        for edited in [
            BASE.replace("lr: 3e-3", "lr: 1e-3"),
            BASE.replace("seed: 1", "seed: 2"),
            BASE.replace("context: 64", "context: 32"),
            BASE.replace("version: 1\n", "version: 1\ndata: { vocab: 128 }\n"),
        ] {
            let changed = keys(&edited);
            assert!(changed.iter().all(|k| !base.contains(k)), "{edited}");
        }
        // Changing one token count changes exactly the runs at that count.
        let changed = keys(&BASE.replace("2e5", "3e5"));
        assert_eq!(changed.iter().filter(|k| base.contains(k)).count(), 2);
        // Changing one shape changes exactly that size's runs.
        let changed = keys(&BASE.replace("d_model: 64, heads: 4", "d_model: 96, heads: 4"));
        assert_eq!(changed.iter().filter(|k| base.contains(k)).count(), 2);
    }

    /// Shared trunks with a warmup in tokens: a longer token count added later keeps every
    /// existing run's key (with a warmup fraction of the trunk, it moves them all), and the
    /// warmup is the same number of steps for every run.
    #[test]
    fn a_warmup_in_tokens_keeps_branch_keys_when_the_grid_grows() {
        let branched = BASE.replace(
            "train: { batch: 8, lr: 3e-3 }",
            "train: { batch: 8, lr: 3e-3, schedule: wsd, branches: true, warmup_tokens: 5120 }",
        );
        let base = keys(&branched);
        let grown = keys(&branched.replace("[1e5, 2e5]", "[1e5, 2e5, 4e5]"));
        assert_eq!(grown.len(), 6);
        assert!(base.iter().all(|k| grown.contains(k)));
        let study = from_bytes(branched.as_bytes(), Path::new("keys.yaml")).unwrap();
        let runs = plan(&study).unwrap();
        // 5120 tokens = 10 steps of 8 × 64.
        assert!(runs.iter().all(|r| r.identity.warmup_steps == Some(10)));
        assert!(runs.iter().all(|r| r.lr_plan().warmup() == 10));
        // A fraction of the trunk instead: growing the grid lengthens every warmup.
        let fraction = branched.replace("warmup_tokens: 5120", "warmup: 0.05");
        let grown = keys(&fraction.replace("[1e5, 2e5]", "[1e5, 2e5, 4e5]"));
        assert!(keys(&fraction).iter().all(|k| !grown.contains(k)));
        // Without branches, every run (the final one too) warms up over those tokens.
        let plain = BASE.replace("lr: 3e-3 }", "lr: 3e-3, warmup_tokens: 5120 }");
        let study = from_bytes(plain.as_bytes(), Path::new("keys.yaml")).unwrap();
        assert!(
            plan(&study)
                .unwrap()
                .iter()
                .all(|r| r.lr_plan().warmup() == 10 && r.identity.train.warmup == 0.0)
        );
    }

    #[test]
    fn isoflop_runs_cost_their_budget() {
        let text = BASE.replace(
            "tokens: [1e5, 2e5]",
            "isoflop: { budgets: [2e12, 4e12], sizes: all }",
        );
        let study = from_bytes(text.as_bytes(), Path::new("iso.yaml")).unwrap();
        let runs = plan(&study).unwrap();
        assert_eq!(runs.len(), 4);
        for run in &runs {
            let budget = run.budget.unwrap();
            // Rounding to whole steps moves cost by at most half a step.
            let step_flops = run.flops / run.steps as f64;
            assert!(
                (run.flops - budget).abs() <= step_flops / 2.0 + 1.0,
                "{run:?}"
            );
        }
    }
}
