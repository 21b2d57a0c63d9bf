//! The blocks that open a chapter before any number: that its data are mock, and the
//! warnings the fits deserve.

use super::Input;
use super::tables::warnings;
use super::template::escape_markdown;

/// Under every table of a mock study.
pub const MOCK_TABLE_NOTE: &str =
    "\n*Mock data: the mock executor reported these numbers from a law; nothing was trained.*\n";

/// For the top of a chapter whose runs the mock executor reported (empty otherwise).
pub fn mock_banner(input: &Input) -> String {
    let Some(t) = input.study.training().filter(|_| input.study.is_mock()) else {
        return String::new();
    };
    format!(
        "> **🧪 Mock data: nothing in this chapter was trained.** Every loss, time and memory \
         figure below was reported by scalebook's mock executor from a known law (`{}`), for \
         tests and demos. The fits recover that law; they say nothing about any model.\n\n",
        escape_markdown(&t.producer)
    )
}

/// The warnings as a block for the top of the chapter (empty when there are none).
pub fn warnings_banner(input: &Input) -> String {
    let w = &input.fits.warnings;
    if w.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "> **⚠ {} warning{} on these results.** Read them before the numbers below:\n>\n",
        w.len(),
        if w.len() == 1 { "" } else { "s" }
    );
    for line in warnings(input).lines() {
        out.push_str(&format!("> {line}\n"));
    }
    out.push('\n');
    out
}
