//! The `trainer:` section: `builtin`, or an external command whose template, version,
//! folder and limits are checked here, so a bad template stops at `validate`, not mid-sweep.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::Validator;
use crate::data::identity::hex;
use crate::study::file::{CommandTrainerFile, TrainerFile};
use crate::study::trainer::{DEFAULT_TOLERANCE, ExternalTrainer, Template};

impl Validator {
    /// `None` for the built-in engine (or after an error, which is recorded).
    pub(super) fn trainer(&mut self, trainer: Option<&TrainerFile>) -> Option<ExternalTrainer> {
        match trainer {
            None | Some(TrainerFile::Builtin(_)) => None,
            Some(TrainerFile::Command(c)) => self.external(c),
        }
    }

    fn external(&mut self, c: &CommandTrainerFile) -> Option<ExternalTrainer> {
        let errors = self.error_count();
        if let Err(why) = Template::parse(&c.command) {
            self.error("trainer.command", why);
        }
        let version = match (&c.version, &c.version_file) {
            (Some(_), Some(_)) => {
                self.error(
                    "trainer.version_file",
                    "give either `version` or `version_file`, not both",
                );
                None
            }
            (None, None) => {
                self.error(
                    "trainer",
                    "missing `version:` (or `version_file:`): the trainer's version is part of \
                     every run's identity, so a changed trainer retrains",
                );
                None
            }
            (Some(v), None) if v.trim().is_empty() => {
                self.error("trainer.version", "must not be empty");
                None
            }
            (Some(v), None) => Some(v.trim().to_string()),
            (None, Some(file)) => self.version_file(file),
        };
        let workdir = match &c.workdir {
            None => self.dir.clone(),
            Some(w) => self.dir.join(w),
        };
        if !workdir.is_dir() {
            self.error(
                if c.workdir.is_some() {
                    "trainer.workdir"
                } else {
                    "trainer"
                },
                format!("{}: no such folder", workdir.display()),
            );
        }
        let env = c.env.clone().unwrap_or_default();
        for name in env.keys() {
            let ok = !name.is_empty()
                && !name.starts_with(|ch: char| ch.is_ascii_digit())
                && name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
            if !ok {
                self.error(
                    format!("trainer.env.{name}"),
                    "not a valid environment variable name (letters, digits and `_`)",
                );
            } else if name.starts_with("SCALEBOOK_") {
                self.error(
                    format!("trainer.env.{name}"),
                    "`SCALEBOOK_` variables are set by scalebook for each run",
                );
            }
        }
        let timeout = c.timeout.map(|_| {
            self.real("trainer.timeout", c.timeout, 0.0, "positive seconds", |t| {
                t > 0.0
            })
        });
        let tolerance = self.real(
            "trainer.tolerance",
            c.tolerance,
            DEFAULT_TOLERANCE,
            "in (0, 1)",
            |t| t > 0.0 && t < 1.0,
        );
        if self.error_count() > errors {
            return None;
        }
        Some(ExternalTrainer {
            command: c.command.clone(),
            version: version?,
            env,
            workdir: Some(std::path::absolute(&workdir).unwrap_or(workdir)),
            timeout_seconds: timeout,
            tolerance,
            stream_tokens: c.tokens == Some(crate::study::file::TokensDelivery::Stream),
        })
    }

    /// `FILE@sha256:<16 hex>` of the file standing for the version.
    fn version_file(&mut self, file: &str) -> Option<String> {
        let path = self.dir.join(file);
        match std::fs::read(&path) {
            Ok(bytes) => Some(format!(
                "{file}@sha256:{}",
                &hex(&Sha256::digest(&bytes))[..16]
            )),
            Err(e) => {
                self.error(
                    "trainer.version_file",
                    format!(
                        "{}: cannot read: {}",
                        Path::new(&path).display(),
                        crate::study::diagnostics::io_reason(&e)
                    ),
                );
                None
            }
        }
    }
}
