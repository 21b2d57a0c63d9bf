//! YAML text → [`StudyFile`], turning parser and type errors into one clear [`Diagnostic`]
//! with the field path, the position and, for unknown keys or values, a did-you-mean.

use super::diagnostics::{Diagnostic, did_you_mean};
use super::file::StudyFile;
use super::locate::{Position, PositionMap};

/// Deserialise the study file. serde stops at the first problem, so this yields one
/// diagnostic; semantic checks later report every remaining problem at once.
pub fn parse(text: &str, positions: &PositionMap) -> Result<StudyFile, Diagnostic> {
    if text.trim().is_empty() {
        return Err(Diagnostic::error(
            "",
            "the study file is empty; start from reports/quickstart.yaml",
        ));
    }
    let mut failed_path: Option<String> = None;
    let result = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize::<_, StudyFile>(de).map_err(|err| {
            failed_path = Some(err.path().to_string());
            err.into_inner()
        })
    });
    let err = match result {
        Ok(file) => return Ok(file),
        Err(err) => err,
    };
    let position = err
        .without_snippet()
        .location()
        .filter(|loc| loc.line() > 0)
        .map(|loc| Position {
            line: loc.line() as usize,
            column: loc.column() as usize,
        });
    // serde_path_to_error writes `?` when it has no path (e.g. a syntax error).
    let path = failed_path
        .map(|p| p.trim_end_matches('?').trim_end_matches('.').to_string())
        .unwrap_or_default();
    let raw = strip_location(&err.without_snippet().to_string());
    let (path, message) = explain(path, &raw);
    let mut diagnostic = Diagnostic::error(path, message);
    diagnostic.position = position.or_else(|| positions.find(&diagnostic.path));
    Err(diagnostic)
}

/// serde-saphyr prefixes `error: line L column C: `; we print the position ourselves.
fn strip_location(message: &str) -> String {
    let message = message.trim();
    let message = message.strip_prefix("error: ").unwrap_or(message);
    if let Some(rest) = message.strip_prefix("line ")
        && let Some(idx) = rest.find(": ")
        && rest[..idx].contains("column")
    {
        return rest[idx + 2..].trim().to_string();
    }
    // `unexpected end of input at line 1, column 1`
    match message.find(" at line ") {
        Some(idx) => message[..idx].to_string(),
        None => message.to_string(),
    }
}

/// Words between the first pair of backticks.
fn quoted(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// The candidates listed after `expected one of` (with or without backticks).
fn expected_list(message: &str) -> Vec<String> {
    let Some(idx) = message.find("expected one of ") else {
        return match message.find("expected `") {
            Some(i) => quoted(&message[i..])
                .map(|s| vec![s.to_string()])
                .unwrap_or_default(),
            None => Vec::new(),
        };
    };
    message[idx + "expected one of ".len()..]
        .split(", ")
        .map(|s| s.trim().trim_matches('`').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Rewrite serde's wording into the study's vocabulary and pick the right path.
fn explain(path: String, raw: &str) -> (String, String) {
    if raw.starts_with("unknown field") || raw.starts_with("unknown variant") {
        let word = quoted(raw).unwrap_or("?").to_string();
        let options = expected_list(raw);
        let hint = did_you_mean(&word, options.iter().map(String::as_str))
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        let listed = if options.is_empty() {
            String::new()
        } else {
            format!("; expected one of {}", options.join(", "))
        };
        let what = if raw.starts_with("unknown field") {
            "unknown key"
        } else {
            "unknown value"
        };
        return (path, format!("{what} `{word}`{hint}{listed}"));
    }
    if let Some(rest) = raw.strip_prefix("missing field") {
        let field = quoted(rest).unwrap_or("?");
        let full = if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        return (full, "missing required key".to_string());
    }
    if raw.starts_with("unexpected end of input") && path.is_empty() {
        return (
            path,
            "the study file has no content; start from reports/quickstart.yaml".to_string(),
        );
    }
    if let Some(rest) = raw.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        return (path, format!("expected {expected}, found a {found}"));
    }
    if let Some(rest) = raw.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest).trim();
        let full = if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        };
        return (full, "duplicate key (each key may appear once)".to_string());
    }
    let message = match raw {
        m if m.starts_with("invalid u") || m.starts_with("invalid i") => {
            "expected a whole number".to_string()
        }
        m if m.starts_with("invalid f") => "expected a number".to_string(),
        m if m.starts_with("invalid bool") => "expected true or false".to_string(),
        m if m.contains("expected string scalar") || m.contains("expected a string") => {
            "expected a plain value (text or number), found a list or mapping".to_string()
        }
        m if m.contains("expected sequence") || m.contains("expected a sequence") => {
            "expected a list (`- item` lines or `[a, b]`)".to_string()
        }
        m if m.contains("expected mapping") || m.contains("expected a map") => {
            "expected a mapping (`key: value` lines or `{ key: value }`)".to_string()
        }
        m => m.to_string(),
    };
    (path, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> Diagnostic {
        parse(text, &PositionMap::build(text)).unwrap_err()
    }

    #[test]
    fn unknown_key_has_path_position_and_hint() {
        let d = problem(
            "version: 1\nname: a\nmodel:\n  context: 8\n  sizes:\n    - {layers: 2, d_modl: 64, heads: 4}\n",
        );
        assert_eq!(d.path, "model.sizes[0].d_modl");
        assert!(
            d.message.contains("did you mean `d_model`?"),
            "{}",
            d.message
        );
        assert_eq!(
            d.position,
            Some(Position {
                line: 6,
                column: 19
            })
        );
    }

    #[test]
    fn missing_key_names_the_key() {
        let d = problem("version: 1\nname: a\nmodel:\n  sizes: []\n");
        assert_eq!(d.path, "model.context");
        assert_eq!(d.message, "missing required key");
    }

    #[test]
    fn type_errors_say_what_was_expected() {
        let d = problem("version: one\nname: a\n");
        assert_eq!(d.path, "version");
        assert_eq!(d.message, "expected a whole number");
        let d = problem("version: 1\nname: a\ntokens: [1e6, lots]\n");
        assert_eq!(d.path, "tokens[1]");
        assert!(d.message.contains("`lots`"), "{}", d.message);
    }

    #[test]
    fn empty_and_syntax_errors_do_not_panic() {
        assert!(problem("").message.contains("empty"));
        assert!(problem("# only a comment\n").message.contains("no content"));
        let d = problem("version: 1\nmodel: [unclosed\n");
        assert!(d.position.is_some());
    }
}
