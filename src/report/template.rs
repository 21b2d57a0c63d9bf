//! Narrative templates and `checks:` gates, both minijinja over the report context.
//!
//! Sandboxed: the environment has no loader (so `include`/`import` cannot read files), no
//! function that reaches the environment, files or network, a fuel limit against runaway
//! loops, and strict undefined values so a typo is an error rather than an empty string.
//! Every interpolated value is escaped for Markdown and HTML unless a template marks it
//! `| safe`, so a title like `<script>` renders as text.

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

use super::format;

/// Instructions one template or check may execute.
const FUEL: u64 = 2_000_000;

/// Escape text for a Markdown document rendered to HTML: HTML's specials become entities and
/// Markdown's inline markup characters are backslash-escaped.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '!' | '~' | '$' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => push_html(&mut out, c),
        }
    }
    out
}

/// `c`, as an entity when HTML gives it a meaning.
fn push_html(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        c => out.push(c),
    }
}

/// Escape text for an HTML context (inside an HTML block Markdown is not parsed, so
/// backslash escapes would show).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_html(&mut out, c);
    }
    out
}

/// The sandboxed environment with scalebook's number filters.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_formatter(|out, _state, value| {
        let text = if value.is_undefined() || value.is_none() {
            String::new()
        } else {
            value.to_string()
        };
        let text = if value.is_safe() {
            text
        } else {
            escape_markdown(&text)
        };
        out.write_str(&text)
            .map_err(|_| Error::new(ErrorKind::WriteFailure, "cannot write the section"))
    });
    env.add_filter("sig", |x: f64, digits: Option<usize>| {
        format::sig(x, digits.unwrap_or(4))
    });
    env.add_filter("sci", |x: f64| format::sci(x));
    env.add_filter("human", |x: f64| format::human(x));
    env.add_filter("pct", |x: f64| format::pct(x));
    env.add_filter("seconds", |x: f64| format::seconds(x));
    env
}

/// Check a template's syntax (at validation time).
pub fn check_template(source: &str) -> Result<(), String> {
    let env = environment();
    env.template_from_str(source)
        .map(|_| ())
        .map_err(|e| one_line(&e))
}

/// Check an expression's syntax (at validation time).
pub fn check_expression(source: &str) -> Result<(), String> {
    let env = environment();
    env.compile_expression(source)
        .map(|_| ())
        .map_err(|e| one_line(&e))
}

/// A minijinja error as one line (its kind, detail and line).
pub fn one_line(e: &Error) -> String {
    let mut text = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        text.push_str(&format!(" (template line {line})"));
    }
    text
}

/// Render one `text:` section.
pub fn render_text(env: &Environment, source: &str, ctx: &Value) -> Result<String, String> {
    env.render_str(source, ctx.clone())
        .map_err(|e| one_line(&e))
}

/// The outcome of one `checks:` entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CheckResult {
    pub expression: String,
    pub passed: bool,
    /// The value it evaluated to, or why it could not be evaluated.
    pub detail: String,
}

/// Evaluate every check (all of them, even after a failure).
pub fn run_checks(env: &Environment, checks: &[String], ctx: &Value) -> Vec<CheckResult> {
    checks
        .iter()
        .map(|expr| {
            let outcome = env
                .compile_expression(expr)
                .and_then(|e| e.eval(ctx.clone()));
            match outcome {
                Ok(v) => CheckResult {
                    expression: expr.clone(),
                    passed: v.is_true(),
                    detail: format!("evaluated to {v}"),
                },
                Err(e) => CheckResult {
                    expression: expr.clone(),
                    passed: false,
                    detail: format!("cannot be evaluated: {}", one_line(&e)),
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Value {
        Value::from(minijinja::value::Serde(serde_json::json!({
            "study": { "title": "<script>alert(1)</script> *bold*" },
            "holdout": { "rel_error_max": 0.04 },
            "runs": [1, 2, 3],
        })))
    }

    #[test]
    fn values_are_escaped_unless_marked_safe() {
        let env = environment();
        let out = render_text(&env, "T: {{ study.title }}", &ctx()).unwrap();
        assert_eq!(out, "T: &lt;script&gt;alert(1)&lt;/script&gt; \\*bold\\*");
        let raw = render_text(&env, "{{ '<b>' | safe }}", &ctx()).unwrap();
        assert_eq!(raw, "<b>");
        // The template's own text is the author's Markdown, not escaped.
        let own = render_text(&env, "**{{ runs | length }} runs**", &ctx()).unwrap();
        assert_eq!(own, "**3 runs**");
    }

    #[test]
    fn templates_cannot_reach_files_or_loop_forever() {
        let env = environment();
        let include = render_text(&env, "{% include '/etc/passwd' %}", &ctx());
        assert!(include.is_err());
        let spin = render_text(
            &env,
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            &ctx(),
        );
        assert!(spin.unwrap_err().contains("fuel"), "fuel limit");
        let typo = render_text(&env, "{{ fits.alpha }}", &ctx()).unwrap_err();
        assert!(typo.contains("undefined"), "{typo}");
    }

    #[test]
    fn checks_all_run_and_report_why() {
        let env = environment();
        let checks = vec![
            "holdout.rel_error_max < 0.05".to_string(),
            "holdout.rel_error_max < 0.01".to_string(),
            "fits.chinchilla.alpha > 0.2".to_string(),
        ];
        let r = run_checks(&env, &checks, &ctx());
        assert_eq!(
            r.iter().map(|c| c.passed).collect::<Vec<_>>(),
            [true, false, false]
        );
        assert!(r[2].detail.starts_with("cannot be evaluated"));
        assert!(check_expression("a <").is_err());
        assert!(check_template("{% if %}").is_err());
    }
}
