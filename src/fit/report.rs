//! What `scalebook fit` computes, as `fits.json` holds it and the report reads it: one
//! serialisable [`FitReport`] with a section per law, the allocation, the hold-out check,
//! the learning-rate sweep and the warnings.

use serde::{Deserialize, Serialize};

use super::chinchilla::Law;
use super::diagnose::Warning;
use super::frontier::FrontierReport;
use super::hyper::HyperReport;
use super::options::{ParamsConvention, PowerX};
use super::reduced::Candidate;
use super::{cost, isoflop, power};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChinchillaReport {
    #[serde(rename = "E")]
    pub e: f64,
    #[serde(rename = "A")]
    pub a: f64,
    #[serde(rename = "B")]
    pub b: f64,
    pub alpha: f64,
    pub beta: f64,
    pub objective: f64,
    pub starts: usize,
    pub starts_at_best: usize,
    pub grad_norm: f64,
    pub delta: f64,
    pub params: ParamsConvention,
    pub points: usize,
    /// Percentile intervals per parameter (absent without bootstrap).
    pub ci: Option<ParamIntervals>,
    pub bootstrap_resamples: usize,
    pub confidence: f64,
    /// Every successful bootstrap refit (empty without bootstrap): bands and intervals at any
    /// (N, D) are percentiles over these.
    pub bootstrap_laws: Vec<Law>,
    /// ln measured − ln fitted at each fitted run, in the fit's order: the scatter of single
    /// runs about the law that a new run's interval carries ([`super::prediction`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub residuals: Vec<f64>,
    /// Parameters whose bootstrap interval is degenerate (zero width, or not moved by the
    /// resamples): the chapter shows no interval for them.
    #[serde(default)]
    pub degenerate: Vec<String>,
    /// The free-E law beside the reduced forms (E fixed at the known entropy, E = 0), by AIC.
    #[serde(default)]
    pub reduced: Vec<Candidate>,
    /// The law with E pinned (`E:` of the chinchilla fit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<super::pinned::PinnedReport>,
    /// The law estimated by variable projection (`estimator: vpnls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpnls: Option<super::vpnls::VpnlsReport>,
}

impl ChinchillaReport {
    /// The fitted law.
    pub fn law(&self) -> Law {
        Law {
            e: self.e,
            a: self.a,
            b: self.b,
            alpha: self.alpha,
            beta: self.beta,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ParamIntervals {
    #[serde(rename = "E")]
    pub e: [f64; 2],
    #[serde(rename = "A")]
    pub a: [f64; 2],
    #[serde(rename = "B")]
    pub b: [f64; 2],
    pub alpha: [f64; 2],
    pub beta: [f64; 2],
}

/// Intervals for the IsoFLOP exponents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExponentIntervals {
    pub a: [f64; 2],
    pub b: [f64; 2],
    pub resamples: usize,
    pub failed: usize,
    pub confidence: f64,
}

/// Intervals for a single-variable law's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PowerIntervals {
    #[serde(rename = "E")]
    pub e: [f64; 2],
    #[serde(rename = "A")]
    pub a: [f64; 2],
    pub alpha: [f64; 2],
    pub resamples: usize,
    pub failed: usize,
    pub confidence: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AllocationReport {
    pub compute: f64,
    pub n_opt: f64,
    pub d_opt: f64,
    pub tokens_per_param: f64,
    pub loss: f64,
    /// [lo, hi] for n_opt, d_opt, tokens_per_param, loss.
    pub ci: Option<[[f64; 2]; 4]>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IsoflopReport {
    pub a: f64,
    pub b: f64,
    /// Bootstrap percentile intervals for a and b (runs resampled with replacement).
    #[serde(default)]
    pub ci: Option<ExponentIntervals>,
    /// ln N_opt = a_intercept + a·ln C (and likewise for D).
    pub a_intercept: f64,
    pub b_intercept: f64,
    pub budgets: Vec<isoflop::BudgetOptimum>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PowerReport {
    pub x: PowerX,
    pub params: ParamsConvention,
    /// Bootstrap percentile intervals for E, A and α (runs resampled with replacement).
    #[serde(default)]
    pub ci: Option<PowerIntervals>,
    #[serde(flatten)]
    pub fit: power::PowerFit,
    pub holdout_rel_error: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HoldoutPoint {
    pub name: String,
    pub n: f64,
    pub d: f64,
    pub measured: f64,
    pub predicted: f64,
    pub rel_error: f64,
    pub predicted_ci: Option<[f64; 2]>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HoldoutReport {
    /// `largest` or `budgets`.
    pub kind: String,
    pub k: u64,
    pub fitted_points: usize,
    pub points: Vec<HoldoutPoint>,
    pub rel_error_max: f64,
    pub rel_error_mean: f64,
    /// The law fitted without the held-out runs, and its bootstrap refits.
    pub law: Law,
    pub bootstrap_laws: Vec<Law>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CostReport {
    pub wall_seconds: Option<cost::CostLaw>,
    pub peak_rss_bytes: Option<cost::CostLaw>,
}

/// Everything `scalebook fit` computes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FitReport {
    /// sha256 of what was fitted (fit version, study file, every input number); set when
    /// `fits.json` is written.
    #[serde(default)]
    pub inputs: String,
    /// The version of the fitting code that computed this (`FIT_VERSION`; 0 in files
    /// written before it was recorded).
    #[serde(default)]
    pub fit_version: u32,
    pub points: usize,
    pub chinchilla: Option<ChinchillaReport>,
    pub allocation: Vec<AllocationReport>,
    pub isoflop: Option<IsoflopReport>,
    pub power: Vec<PowerReport>,
    pub holdout: Option<HoldoutReport>,
    pub cost: Option<CostReport>,
    pub frontier: Option<FrontierReport>,
    /// Optima under a wall-clock budget and/or a parameter cap.
    pub constrained: Vec<ConstrainedReport>,
    /// The learning-rate sweep: the best run per point and η*(N, D) (absent without a sweep).
    #[serde(default)]
    pub hyper: Option<HyperReport>,
    /// The whole-curve laws (`law: curve`), their held-out checks and the curve-informed
    /// L(N, D).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve: Option<super::curve::CurveReport>,
    /// The rollout audit (`holdout.rollout: sizes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<super::rollout::RolloutReport>,
    /// The leave-one-out over token counts (`holdout.leave_one_out: tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave_one_out: Option<super::rollout::LeaveOneOutReport>,
    /// The over-training law (`law: overtrain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overtrain: Option<super::overtrain_report::OvertrainReport>,
    /// The data-constrained law (`law: data_constrained`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_constrained: Option<super::data_constrained_report::DataConstrainedReport>,
    /// A downstream metric's law (`law: metric`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<super::metric_report::MetricReport>,
    /// A task accuracy from (N, D) in two steps (`law: metric, form: two_step`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_two_step: Option<super::accuracy_report::AccuracyReport>,
    /// A task accuracy as a power law in log-accuracy (`law: metric, form: direct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_direct: Option<super::accuracy_report::AccuracyReport>,
    /// Decisions over the recipes of imported runs (`variants:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decisions: Option<super::decisions::DecisionReport>,
    /// The data's known entropy rate and its standard error, which the warnings compare E
    /// with (synthetic data trained by the built-in engine; absent otherwise).
    #[serde(default)]
    pub entropy: Option<[f64; 2]>,
    /// The validation set's own floor (the true mean −ln p of its targets): E estimates the
    /// floor of the data the losses were measured on, which differs from the language's
    /// entropy by the validation sample's luck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_floor: Option<f64>,
    /// Structured warnings ([`diagnose`]), in a fixed order.
    pub warnings: Vec<Warning>,
    /// The warnings' codes, for `checks:` (e.g. `"'param_at_bound' not in fits.warning_codes"`).
    #[serde(default)]
    pub warning_codes: Vec<String>,
    /// The codes among them that question the law (book: "Trusting a law"), for `checks:`
    /// (`"fits.questioning_codes | length == 0"`: no warning questions the law).
    #[serde(default)]
    pub questioning_codes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConstrainedReport {
    /// `wall_seconds` or `flops`.
    pub budget_kind: String,
    pub budget: f64,
    pub max_params: Option<f64>,
    #[serde(flatten)]
    pub optimum: super::constrained::Constrained,
}
