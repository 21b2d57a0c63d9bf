//! Pure numerics for scaling laws (no I/O), every fitted law behind one interface ([`law`]): the Chinchilla approach-3 law and its
//! compute-optimal allocation ([`chinchilla`]), IsoFLOP parabolas ([`isoflop`]),
//! single-variable laws ([`power`]), whole-curve laws under any learning-rate schedule ([`curve`]), cost laws ([`cost`]), constrained optima
//! ([`constrained`]), the learning-rate envelope and η*(N, D) ([`hyper`]), reduced laws compared by AIC ([`reduced`]), structured warnings
//! ([`diagnose`]), bootstrap intervals
//! ([`bootstrap`]), on an allocation-free L-BFGS ([`lbfgs`]) and small least squares
//! ([`linear`]).

pub mod accuracy;
pub mod accuracy_report;
mod accuracy_warnings;
pub mod approach3;
pub mod batch;
pub mod bootstrap;
pub mod chinchilla;
pub mod constrained;
pub mod cost;
pub mod cost_report;
pub mod curve;
pub mod data_constrained;
pub mod data_constrained_report;
pub mod decisions;
pub mod diagnose;
pub mod frontier;
pub mod hyper;
pub mod isoflop;
pub mod lanes;
pub mod law;
pub mod lbfgs;
pub mod linear;
pub mod metric;
pub mod metric_report;
pub mod options;
pub mod overtrain;
pub mod overtrain_report;
pub mod pinned;
pub mod power;
pub mod prediction;
pub mod reduced;
pub mod report;
pub mod rollout;
pub mod suite;
pub mod vpnls;
