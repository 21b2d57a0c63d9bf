//! scalebook: a declarative YAML *study* in, a reproducible report on how language-model loss
//! scales out.
//!
//! The pipeline (DESIGN.md): [`study`] parses and validates the study file and expands its
//! sweep into runs; [`data`], [`model`] and [`train`] train one run; [`store`] and [`exec`]
//! cache and schedule runs; [`fit`] fits scaling laws; [`report`] writes the book chapter.
//! Each module only reads what the previous ones produce.

pub mod cli;
pub mod data;
pub mod exec;
pub mod external;
pub mod files;
pub mod fit;
pub mod isa;
pub mod model;
pub mod pipeline;
pub mod record;
pub mod report;
pub mod rng;
pub mod store;
pub mod study;
pub mod sys;
#[doc(hidden)]
pub mod testing;
pub mod train;
