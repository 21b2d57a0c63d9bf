//! The command line: one file per subcommand, each with `Args` and `run`. This module parses
//! arguments, dispatches, and maps failures to the exit codes of DESIGN.md.

pub mod bench;
pub mod bench_study;
pub mod diff;
pub mod fit;
pub mod plan;
pub mod producer;
pub mod progress;
pub mod report;
pub mod run;
pub mod schema;
pub mod slurm_args;
pub mod slurm_task;
pub mod status;
pub mod store_arg;
pub mod task;
pub mod train_point;
pub mod validate;
pub mod verify;

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::study::{self, Study, StudyError};

/// Exit codes (DESIGN.md "Exit codes").
pub mod exit {
    /// Everything worked.
    pub const OK: u8 = 0;
    /// A bug or an environment failure (I/O, disk full).
    pub const INTERNAL: u8 = 1;
    /// Bad usage or an invalid study file.
    pub const USAGE: u8 = 2;
    /// Some runs failed (with --keep-going).
    pub const RUNS_FAILED: u8 = 3;
    /// A `checks:` gate failed.
    pub const CHECK_FAILED: u8 = 4;
    /// Verification found a difference: `verify` could not confirm a record, a fit or the
    /// chapter, or a published record is damaged.
    pub const VERIFY_FAILED: u8 = 5;
    /// Interrupted (Ctrl-C) and left a Slurm array running: `run` attaches to it again.
    pub const INTERRUPTED: u8 = 130;
}

/// `scalebook --version`: the build, for bug reports (chapters record what produced their
/// numbers, not what rendered them).
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("SCALEBOOK_GIT_COMMIT"),
    "; ",
    env!("SCALEBOOK_RUSTC"),
    "; Cargo.lock sha256 ",
    env!("SCALEBOOK_CARGO_LOCK_SHA256"),
    "; ",
    env!("SCALEBOOK_DEP_VERSIONS"),
    ")"
);

/// Turn a YAML study into trained runs, fitted scaling laws and a book chapter.
#[derive(Debug, Parser)]
#[command(name = "scalebook", version, long_version = LONG_VERSION, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a study file; print every problem with its line and field.
    Validate(validate::Args),
    /// List the runs a study would train, with parameters, tokens and FLOPs.
    Plan(plan::Args),
    /// Train every run the store lacks, fit the laws, train the final run, write the book.
    Run(Box<run::Args>),
    /// Fit the study's laws to its runs (or imported results); write fits.json.
    Fit(fit::Args),
    /// Write the study's book chapter (charts, tables, narrative) and build the HTML.
    Report(report::Args),
    /// Show each planned run's state in the store: done, missing, running, failed, diverged.
    Status(status::Args),
    /// Check published results: record integrity, a refit, a fresh render and re-trained runs.
    Verify(verify::Args),
    /// Compare two versions of a study: runs added, removed and changed, every fitted number.
    Diff(diff::Args),
    /// Print the study file's JSON Schema (for editor completion and checks).
    Schema(schema::Args),
    /// Write a task file for a study's `tasks:` (a cloze task from its text corpus).
    Task {
        #[command(subcommand)]
        which: task::Which,
    },
    /// Train one run from a run spec and write its record (used by executors, or by hand).
    TrainPoint(train_point::Args),
    /// One task of a Slurm array submitted by `run --executor slurm` (run by Slurm).
    #[command(hide = true)]
    SlurmTask(slurm_task::Args),
    /// Run an external trainer and end its whole process tree with it (run by `train-point`).
    #[command(hide = true)]
    Supervise {
        /// The trainer's command and arguments, after `--`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Measure scalebook itself (training throughput, fitting speed).
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
}

/// The most runs `--jobs` trains at once (more is a typo, never a machine).
pub const MAX_JOBS: usize = 4096;

fn whole_number(text: &str) -> Result<usize, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number"))
}

/// This scalebook's own binary, which executors run as `train-point`.
pub fn current_exe() -> Result<std::path::PathBuf, Failure> {
    std::env::current_exe().map_err(|e| {
        Failure::new(
            exit::INTERNAL,
            format!("cannot find the scalebook binary: {e}"),
        )
    })
}

/// Accelerator ids (`--devices 0,1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Devices(pub Vec<String>);

/// Parse `--devices`: accelerator ids separated by commas (`0,1,2,3`), each once.
pub fn parse_devices(text: &str) -> Result<Devices, String> {
    let devices: Vec<String> = text.split(',').map(|d| d.trim().to_string()).collect();
    if devices.iter().any(|d| {
        d.is_empty()
            || !d
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':')
    }) {
        return Err(format!(
            "`{text}` is not a list of device ids such as `0,1,2,3`"
        ));
    }
    let mut seen = devices.clone();
    seen.sort();
    seen.dedup();
    if seen.len() != devices.len() {
        return Err(format!("`{text}` names a device twice"));
    }
    Ok(Devices(devices))
}

/// Parse a job count: a whole number from 1 to [`MAX_JOBS`].
pub fn parse_jobs(text: &str) -> Result<usize, String> {
    let n = whole_number(text)?;
    if (1..=MAX_JOBS).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be from 1 to {MAX_JOBS}, not {n}"))
    }
}

/// Parse a thread count for one process: a whole number from 1 to this machine's cores
/// (the engine is compute-bound: threads beyond the cores only wait on each other).
pub fn parse_threads(text: &str) -> Result<usize, String> {
    let n = whole_number(text)?;
    let cores = crate::sys::default_threads();
    if (1..=cores).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "must be from 1 to {cores} (the cores of this machine), not {n}"
        ))
    }
}

/// What status lines about mock records start with: their numbers come from a law.
pub use crate::pipeline::MOCK_LABEL;

/// How commands that print results print them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Table,
    /// JSON for programs.
    Json,
}

/// A command's failure: the exit code and the lines to print on stderr.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub lines: Vec<String>,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            lines: vec![message.into()],
        }
    }
}

impl From<crate::pipeline::Error> for Failure {
    fn from(e: crate::pipeline::Error) -> Self {
        let code = match e {
            crate::pipeline::Error::Input(_) => exit::USAGE,
            crate::pipeline::Error::Io(_) => exit::INTERNAL,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<StudyError> for Failure {
    fn from(e: StudyError) -> Self {
        Failure {
            code: exit::USAGE,
            lines: e.lines(),
        }
    }
}

/// Load a study, printing its warnings to stderr.
pub fn load_study(path: &Path) -> Result<Study, Failure> {
    let study = study::load(path)?;
    for warning in &study.warnings {
        eprintln!("{}", warning.render(path));
    }
    Ok(study)
}

/// Parse arguments, run the command, and return its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Thread count must be fixed before the first candle op (see sys::set_threads).
    let threads = match &cli.command {
        Command::TrainPoint(args) => Some(args.threads.unwrap_or_else(crate::sys::default_threads)),
        Command::Bench {
            which: bench::Which::Train(args),
        } => Some(args.threads),
        Command::Bench {
            which: bench::Which::Fit(args),
        } => Some(args.threads),
        _ => None,
    };
    if let Some(n) = threads {
        // SAFETY: nothing has started a thread yet: only the arguments were parsed.
        unsafe { crate::sys::set_threads(n) };
    }
    let result = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Schema(args) => schema::run(&args),
        Command::Task { which } => task::run(&which),
        Command::Run(args) => run::run(&args),
        Command::Fit(args) => fit::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::TrainPoint(args) => train_point::run(&args, threads.unwrap_or(1)),
        Command::SlurmTask(args) => slurm_task::run(&args),
        Command::Bench { which } => bench::run(&which),
        // Exits as the trainer did: its code, or its signal.
        Command::Supervise { command } => {
            std::process::exit(crate::external::supervise::run(&command))
        }
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(failure) => {
            for line in &failure.lines {
                eprintln!("{line}");
            }
            ExitCode::from(failure.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        super::Cli::command().debug_assert();
    }
}
