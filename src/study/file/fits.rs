//! The study file's `fits:`, `holdout:` and `final:` sections: which laws to fit, with their
//! options, and what the fits choose.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::super::units::{Count, Real};

/// Laws the fitting engine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LawKind {
    /// L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, approach 3).
    Chinchilla,
    /// Per-budget parabolas in ln N (approach 2).
    Isoflop,
    /// Lower envelope of the learning curves over compute (approach 1).
    Frontier,
    /// A single-variable law over params, tokens or compute.
    Power,
    /// Wall time and memory as power laws of N and D.
    Cost,
    /// A whole-curve law per size (and learning rate) under the runs' learning-rate
    /// schedules (multi-power or annealing), checked on held-out curves.
    Curve,
    /// L(C, M) = E + (a·M^η + b·M^−η)·C^−η, M = D/N (Gadre et al. 2024): one exponent
    /// shared by N and D, for runs trained far past the compute-optimal ratio.
    Overtrain,
    /// E + A/N′^α + B/D′^β over effective N′ and D′ (Muennighoff et al. 2023): repeated
    /// tokens, and parameters past the compute-optimal size for the unique tokens, are worth
    /// less than fresh ones (needs runs that record their unique tokens).
    DataConstrained,
    /// A downstream metric's law (`form: error_from_loss`: the mean error over a task set
    /// against the loss, Err(L) = ε − k·exp(−γ·L), Gadre et al. 2024; `two_step`: the task
    /// loss from (N, D), then a sigmoid to the accuracy; `direct`: a power law in
    /// log-accuracy of compute; needs runs that record metrics).
    Metric,
    /// `final.law` only: the law the data support — among the fitted Chinchilla forms and the
    /// over-training law, the one with the lowest rollout (else hold-out) error.
    Auto,
}

// The laws' options are the fitting code's own types (`fit::options`); the study file
// names them.
pub use crate::fit::options::{
    BootstrapStarts, CurveForm, Estimator, GridKind, ParamsConvention, PowerForm, PowerX,
};

/// `E:` of a chinchilla fit: `entropy` or a number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FloorFile {
    Entropy,
    Value(f64),
}

impl<'de> Deserialize<'de> for FloorFile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{self, IntoDeserializer};
        struct FloorVisitor;
        impl de::Visitor<'_> for FloorVisitor {
            type Value = FloorFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`entropy` or a number such as 1.69")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FloorFile, E> {
                Ok(FloorFile::Value(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FloorFile, E> {
                Ok(FloorFile::Value(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FloorFile, E> {
                Real::deserialize(v.into_deserializer()).map(|r| FloorFile::Value(r.0))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FloorFile, E> {
                if v.trim() == "entropy" {
                    return Ok(FloorFile::Entropy);
                }
                crate::study::units::parse_real(v)
                    .map(FloorFile::Value)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "expected `entropy` or a number such as 1.69, found `{v}`"
                        ))
                    })
            }
        }
        deserializer.deserialize_any(FloorVisitor)
    }
}

impl Serialize for FloorFile {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FloorFile::Entropy => serializer.serialize_str("entropy"),
            FloorFile::Value(v) => serializer.serialize_f64(*v),
        }
    }
}

impl JsonSchema for FloorFile {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Floor".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let number = generator.subschema_for::<Real>();
        schemars::json_schema!({
            "description": "`entropy` (the data's known entropy rate) or a number.",
            "anyOf": [ { "const": "entropy" }, number ]
        })
    }
}

/// One law to fit. Keys other than `law` apply to some laws only (see each key).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FitFile {
    /// The law.
    pub law: LawKind,
    /// Bootstrap resamples for intervals (chinchilla, isoflop, power; default 1000; curve:
    /// nested resamples of the curve-informed law, default 200; 0 = none).
    #[serde(default)]
    pub bootstrap: Option<Count>,
    /// Interval coverage in (0, 1) (default 0.95).
    #[serde(default)]
    pub confidence: Option<Real>,
    /// Chinchilla, overtrain and data_constrained: Huber δ on log loss (default 1e-3).
    #[serde(default)]
    pub delta: Option<Real>,
    /// Chinchilla only: `full` (default) or `coarse` start grid.
    #[serde(default)]
    pub grid: Option<GridKind>,
    /// Chinchilla only: bootstrap refits start from the full-data optimum (`warm`, default),
    /// run the whole start grid per resample (`grid`: finds a resample's optimum even in
    /// another basin), or the grid pruned after 10 iterations to its 64 best starts
    /// (`pruned`: the same optimum at a sixth of the price).
    #[serde(default)]
    pub bootstrap_starts: Option<BootstrapStarts>,
    /// Chinchilla only: also fit the law with the floor E held at `entropy` (the synthetic
    /// language's known entropy rate) or at a number, beside the free-E fit
    /// (`fits.chinchilla.pinned`); the final run follows the pinned law.
    #[serde(default, rename = "E", alias = "e")]
    pub e: Option<FloorFile>,
    /// Chinchilla only: `vpnls` also estimates the law by variable projection (least squares
    /// in L; `fits.chinchilla.vpnls`) beside the Huber-on-log fit (`huber_log`, default).
    #[serde(default)]
    pub estimator: Option<Estimator>,
    /// Parameter-count convention (chinchilla, isoflop, power, frontier; default total).
    #[serde(default)]
    pub params: Option<ParamsConvention>,
    /// Power only: the variable.
    #[serde(default)]
    pub x: Option<PowerX>,
    /// The functional form: power `offset` (default), `pure`, `log` or `all`; curve
    /// `multi_power` (default) or `annealing`.
    #[serde(default)]
    pub form: Option<FormName>,
    /// Curve only: the fraction of each run's first steps left out (default 0.1, at most 0.1).
    #[serde(default)]
    pub burn_in: Option<Real>,
    /// Curve only: also fit L(N, D) to the curve laws' predictions (default true).
    #[serde(default)]
    pub curve_informed: Option<bool>,
    /// Curve only: fit the logged training losses besides the validation points (default
    /// false; used only for data that never repeat, the synthetic languages).
    #[serde(default)]
    pub train_loss: Option<bool>,
    /// Metric laws: the metrics (task accuracies) whose mean error the law models (default:
    /// every metric the runs record).
    #[serde(default)]
    pub metrics: Option<Vec<String>>,
    /// Metric laws: the runs (by name) the law is asked for, fitted on the others (default:
    /// the study's hold-out).
    #[serde(default)]
    pub predict: Option<Vec<String>>,
    /// `law: metric, form: two_step`: the recorded metric that is the task's loss (the mean
    /// −ln p of the correct answer), or `loss` for the validation loss (default: a task's
    /// `<name>_nll` for its `<name>_accuracy`, `facts_nll` for the facts recall, else `loss`).
    #[serde(default)]
    pub task_loss: Option<String>,
}

/// A law's functional form (power and curve laws name theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormName {
    Offset,
    Pure,
    Log,
    All,
    MultiPower,
    Annealing,
    ErrorFromLoss,
    TwoStep,
    Direct,
}

impl FormName {
    /// The power law's form, if this is one.
    pub fn power(self) -> Option<PowerForm> {
        match self {
            FormName::Offset => Some(PowerForm::Offset),
            FormName::Pure => Some(PowerForm::Pure),
            FormName::Log => Some(PowerForm::Log),
            FormName::All => Some(PowerForm::All),
            _ => None,
        }
    }

    /// The curve law's form, if this is one.
    pub fn curve(self) -> Option<CurveForm> {
        match self {
            FormName::MultiPower => Some(CurveForm::MultiPower),
            FormName::Annealing => Some(CurveForm::Annealing),
            _ => None,
        }
    }
}

/// Hold-out selection; give exactly one key.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldoutFile {
    /// Leave out the k largest model sizes.
    #[serde(default)]
    pub largest: Option<Count>,
    /// Leave out the k largest compute budgets (IsoFLOP studies).
    #[serde(default)]
    pub budgets: Option<Count>,
    /// Leave out the runs trained for more than this many epochs of their unique tokens
    /// (runs that record them: `results.columns.unique_tokens` or `epochs`).
    #[serde(default)]
    pub epochs_above: Option<Count>,
    /// `sizes`: the rollout audit — fit every law on the smallest k sizes and predict the
    /// next, for every k from 3 (alone, or beside `largest`/`budgets`).
    #[serde(default)]
    pub rollout: Option<RolloutKind>,
    /// `tokens`: refit every law without each token count in turn and predict it (alone, or
    /// beside the other keys; needs 4 or more token counts).
    #[serde(default)]
    pub leave_one_out: Option<LeaveOneOutKind>,
}

/// What the leave-one-out leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaveOneOutKind {
    Tokens,
}

/// What the rollout audit steps over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutKind {
    Sizes,
}

/// The final, compute-optimal run.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FinalFile {
    /// Compute budget in FLOPs.
    pub budget: Real,
    /// Law that chooses N and D: `chinchilla` (default), `isoflop`, or `auto` (the law the
    /// data support).
    #[serde(default)]
    pub law: Option<LawKind>,
    /// With a batch sweep: the batch size (one of `train.batch`) a neighbour of the final
    /// run trains at, for comparison (default: the sweep's middle value, the lower of two).
    #[serde(default)]
    pub compare_batch: Option<Count>,
    /// Lifetime inference tokens the model will serve, at 2N FLOPs each: the budget then
    /// pays for training and inference, 6ND + 2N·I = budget (Sardana et al. 2024).
    #[serde(default)]
    pub inference_tokens: Option<Real>,
    /// The most parameters the final model may have (in the law's parameter convention).
    #[serde(default)]
    pub max_params: Option<Count>,
    /// The most peak memory (bytes) the final run may use, through the fitted memory law
    /// (needs `- { law: cost }` among the fits).
    #[serde(default)]
    pub max_memory_bytes: Option<Count>,
    /// The most wall seconds the final run may train for on the machine that trained the
    /// study, through the fitted time law (needs `- { law: cost }` among the fits).
    #[serde(default)]
    pub max_wall_seconds: Option<Real>,
    /// The unique tokens the budget may draw from: the data-constrained law's allocation of
    /// the budget under that cap, and the epochs it repeats them (needs `law:
    /// data_constrained`; the final run itself trains on the study's data as planned).
    #[serde(default)]
    pub unique_tokens: Option<Count>,
}
