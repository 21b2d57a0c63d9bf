//! The `--executor` and `--mock-law` options shared by the commands that train or read a
//! study's runs. The executor decides what produces the numbers — the built-in engine, or
//! the mock's law — and that producer is part of every run's key, so the mock's records and
//! trained ones never stand in for each other: `fit`, `report`, `status` and `plan` read the
//! mock's records only when given the same `--executor mock` (and `--mock-law`) as `run`.

use super::{Failure, exit};
use crate::exec::mock::MockLaw;
use crate::study::Study;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorKind {
    /// Train on this machine, one `train-point` process per run.
    Local,
    /// Train on a Slurm cluster: the missing runs as one job array (`run` only; the same
    /// runs and keys as `local`).
    Slurm,
    /// For tests and demos: report losses from a known law instantly (see --mock-law); its
    /// records are kept apart from trained ones and every chapter says they are mock data.
    Mock,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ProducerArg {
    /// What produces the runs: training (`local`, `slurm`), or the mock executor's law (`mock`)
    #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
    pub executor: ExecutorKind,
    /// Mock executor's law and noise: `E,A,B,alpha,beta[,noise]` [default: Chinchilla's
    /// 1.69,406.4,410.7,0.34,0.28 with 1 % noise]
    #[arg(long, value_name = "LAW")]
    pub mock_law: Option<String>,
}

impl ProducerArg {
    /// The mock's law, when the executor is the mock.
    pub fn mock_law(&self) -> Result<Option<MockLaw>, Failure> {
        match (self.executor, &self.mock_law) {
            (ExecutorKind::Mock, Some(text)) => MockLaw::parse(text)
                .map(Some)
                .map_err(|e| Failure::new(exit::USAGE, e)),
            (ExecutorKind::Mock, None) => Ok(Some(MockLaw::default())),
            (_, Some(_)) => Err(Failure::new(
                exit::USAGE,
                "--mock-law applies only to `--executor mock`",
            )),
            (_, None) => Ok(None),
        }
    }

    /// The study with its runs keyed by this producer.
    pub fn apply(&self, study: Study) -> Result<Study, Failure> {
        Ok(match self.mock_law()? {
            Some(law) => study.produced_by(law.producer()),
            None => study,
        })
    }
}
