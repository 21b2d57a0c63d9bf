//! The fitting code's own options: plain types the pipeline fills from the study file
//! (`pipeline::fitting` converts at its edge), so `fit/` is numerics over these and knows
//! nothing of study files. The study file spells the enums below directly (they carry its
//! serde names and schema).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which parameter count a law uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamsConvention {
    /// All parameters (Chinchilla's convention).
    Total,
    /// Without token and position embeddings (Kaplan's convention).
    NonEmbedding,
}

/// The variable of a single-variable law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PowerX {
    Params,
    Tokens,
    Compute,
}

/// Functional forms of a single-variable law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PowerForm {
    /// y = E + A·x^(−α)
    Offset,
    /// y = A·x^(−α)
    Pure,
    /// y = a − b·ln x
    Log,
    /// Fit all three and compare them.
    All,
}

/// Where each bootstrap refit of the approach-3 fit starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BootstrapStarts {
    Warm,
    Grid,
    Pruned,
}

/// Start grids for the approach-3 fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GridKind {
    /// Hoffmann et al.'s 4,500 starts.
    Full,
    /// A 243-start subset for quick looks.
    Coarse,
}

/// A floor the Chinchilla law is fitted with beside its free-E fit (`E:` of a `chinchilla`
/// fit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PinnedE {
    /// The data's known entropy rate (the synthetic languages record it).
    Entropy,
    /// A number the study gives.
    Value(f64),
}

/// How the Chinchilla law is estimated besides the Huber-on-log fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Estimator {
    /// Σ Huber_δ(ln L̂ − ln L) by L-BFGS from the start grid (Hoffmann et al. 2022).
    HuberLog,
    /// Variable projection: Σ(L̂ − L)², the linear part (E, A, B) by non-negative least
    /// squares at each pair of exponents, searched over (α, β) alone.
    Vpnls,
}

/// Forms of a whole-curve law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CurveForm {
    /// Luo et al. 2025: L₀ + A·S₁^−α − B·Σ Δη·G(η^−γ·S_k), seven parameters.
    MultiPower,
    /// Tissue et al. 2024: L₀ + A·S₁^−α − C·S₂, four parameters.
    Annealing,
}

/// Which points a hold-out check leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holdout {
    /// The k largest model sizes.
    Largest(u64),
    /// The k largest compute budgets.
    Budgets(u64),
    /// The runs trained for more than this many epochs of their unique tokens.
    EpochsAbove(u64),
}

/// One law to fit, with its options.
#[derive(Debug, Clone, PartialEq)]
pub enum LawRequest {
    Chinchilla {
        bootstrap: u64,
        confidence: f64,
        delta: f64,
        grid: GridKind,
        bootstrap_starts: BootstrapStarts,
        params: ParamsConvention,
        /// Also fit the law with E held at this floor (`fits.chinchilla.pinned`).
        pinned: Option<PinnedE>,
        /// Also estimate it by variable projection (`fits.chinchilla.vpnls`).
        vpnls: bool,
    },
    Isoflop {
        bootstrap: u64,
        confidence: f64,
        params: ParamsConvention,
    },
    Frontier {
        params: ParamsConvention,
    },
    Power {
        x: PowerX,
        form: PowerForm,
        bootstrap: u64,
        confidence: f64,
        params: ParamsConvention,
    },
    Cost,
    /// The over-training law ([`super::overtrain`]).
    Overtrain {
        bootstrap: u64,
        confidence: f64,
        delta: f64,
        params: ParamsConvention,
        /// Also estimate the law by variable projection (least squares in L,
        /// `fits.overtrain.vpnls`), the over-training paper's own objective.
        vpnls: bool,
    },
    /// A whole-curve law per size (and learning rate), checked on held-out curves.
    Curve(CurveRequest),
    /// The data-constrained law ([`super::data_constrained`]).
    DataConstrained {
        bootstrap: u64,
        confidence: f64,
        delta: f64,
        params: ParamsConvention,
    },
    /// A downstream metric's law ([`super::metric`]).
    Metric(MetricRequest),
}

/// A downstream metric law's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricForm {
    /// Err(L) = ε − k·exp(−γ·L) of the mean error over a task set (Gadre et al. 2024).
    ErrorFromLoss,
    /// The task loss from (N, D), then the accuracy as a sigmoid of the task loss (Llama 3;
    /// Bhagia et al. 2024).
    TwoStep,
    /// A power law in log-accuracy of compute (Krajewski et al. 2025).
    Direct,
}

impl MetricForm {
    /// The name in the study file.
    pub fn name(self) -> &'static str {
        match self {
            MetricForm::ErrorFromLoss => "error_from_loss",
            MetricForm::TwoStep => "two_step",
            MetricForm::Direct => "direct",
        }
    }
}

/// What decisions over variants compare (lower is better).
#[derive(Debug, Clone, PartialEq)]
pub enum DecideBy {
    Loss,
    /// 1 − the mean of these metrics.
    Error(Vec<String>),
}

/// `variants:`: the recipes of imported runs, compared at a target scale.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantsRequest {
    pub by: DecideBy,
    /// The target (N, D); default the largest run's.
    pub target: Option<[f64; 2]>,
    pub bootstrap: u64,
    pub confidence: f64,
}

/// The options of `law: metric`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRequest {
    pub form: MetricForm,
    /// The metrics (task accuracies) whose mean error the law models; empty: every metric
    /// the runs record.
    pub metrics: Vec<String>,
    /// The runs the law is asked for (fitted on the others); empty: the study's hold-out.
    pub predict: Vec<String>,
    /// `two_step`: the metric that is the task's loss (the mean −ln p of the correct answer),
    /// or `loss` for the validation loss.
    pub task_loss: Option<String>,
    pub bootstrap: u64,
    pub confidence: f64,
}

/// The options of `law: curve`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurveRequest {
    pub form: CurveForm,
    /// Fraction of each run's first steps left out (≤ 0.1).
    pub burn_in: f64,
    /// Fit the logged training losses too (data that never repeat only).
    pub train_loss: bool,
    /// Nested bootstrap resamples of the curve-informed law.
    pub bootstrap: u64,
    pub confidence: f64,
    /// Fit L(N, D) from the curve laws' predictions too.
    pub informed: bool,
}
