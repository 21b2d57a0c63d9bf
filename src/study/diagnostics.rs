//! Problems found in a study file, each with the field path, the position when known, and a
//! message that says what was expected. Rendered one per line as `FILE:LINE:COL: PATH: …`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::locate::{Position, PositionMap};

/// Whether a problem stops the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in a study file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Field path, e.g. `model.sizes[2].heads`; empty for the whole document.
    pub path: String,
    pub message: String,
    pub position: Option<Position>,
}

impl Diagnostic {
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
            position: None,
        }
    }

    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(path, message)
        }
    }

    /// Fill in the position from the document's map unless the parser already gave one.
    pub fn locate(mut self, positions: &PositionMap) -> Self {
        if self.position.is_none() {
            self.position = positions.find(&self.path);
        }
        self
    }

    /// `FILE:LINE:COL: PATH: message` (`warning: ` before the message for warnings).
    pub fn render(&self, file: &Path) -> String {
        let mut out = file.display().to_string();
        if let Some(pos) = self.position {
            out.push_str(&format!(":{}:{}", pos.line, pos.column));
        }
        out.push_str(": ");
        if self.severity == Severity::Warning {
            out.push_str("warning: ");
        }
        if !self.path.is_empty() {
            out.push_str(&self.path);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }
}

/// Why a study could not be loaded.
#[derive(Debug)]
pub enum StudyError {
    /// The file could not be read at all.
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file was read and has one or more problems.
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
}

impl StudyError {
    /// One line per problem, errors first in file order.
    pub fn lines(&self) -> Vec<String> {
        match self {
            StudyError::Read { path, source } => {
                vec![format!(
                    "{}: cannot read study file: {}",
                    path.display(),
                    io_reason(source)
                )]
            }
            StudyError::Invalid { path, diagnostics } => {
                diagnostics.iter().map(|d| d.render(path)).collect()
            }
        }
    }
}

impl fmt::Display for StudyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

impl std::error::Error for StudyError {}

/// The OS reason without Rust's `(os error N)` suffix: `no such file`, `permission denied`.
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => {
            let text = e.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
    }
}

/// The closest candidate to `word` when it is plausibly a typo of it.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses_only() {
        let keys = ["layers", "d_model", "heads", "name"];
        assert_eq!(did_you_mean("d_modl", keys), Some("d_model"));
        assert_eq!(did_you_mean("layer", keys), Some("layers"));
        assert_eq!(did_you_mean("zzz", keys), None);
    }

    #[test]
    fn renders_one_line_with_position_and_path() {
        let mut d = Diagnostic::error("model.sizes[2].heads", "must be positive");
        d.position = Some(Position {
            line: 7,
            column: 12,
        });
        assert_eq!(
            d.render(Path::new("s.yaml")),
            "s.yaml:7:12: model.sizes[2].heads: must be positive"
        );
        let w = Diagnostic::warning("isoflop", "few sizes");
        assert_eq!(
            w.render(Path::new("s.yaml")),
            "s.yaml: warning: isoflop: few sizes"
        );
    }
}
