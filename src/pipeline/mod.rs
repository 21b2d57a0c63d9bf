//! The pipeline's steps after training, shared by every command that needs them — `run`,
//! `fit`, `report`, and whatever checks or compares studies: [`fitting`] turns a study's
//! records into `fits.json`, [`chapter`] turns records and fits into the book chapter. The
//! command line only parses arguments and maps [`Error`] to exit codes.

pub mod chapter;
pub mod compare;
pub mod curves;
pub mod diff;
pub mod estimate;
pub mod final_target;
pub mod fitting;
pub mod spend;
pub mod study_run;
pub mod transfer;
pub mod verify;

/// What status lines about mock records start with: their numbers come from a law.
pub const MOCK_LABEL: &str = "MOCK DATA (the mock executor's law, nothing trained): ";

/// Why a step could not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The study or what it names is wrong (exit 2).
    #[error("{0}")]
    Input(String),
    /// Files could not be read or written (exit 1).
    #[error("{0}")]
    Io(String),
}
