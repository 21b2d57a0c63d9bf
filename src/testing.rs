//! What scalebook's own tests share with the library: how a test that cannot run here says
//! so, and where the published reference data lives.
//!
//! A test that cannot run (a tool or data this machine lacks) calls [`skip`]: it prints one
//! `SKIPPED <test>: <why>` line to the real stdout (not captured by the test harness), and
//! with `SCALEBOOK_NO_SKIP` set — `.ci/run` sets it — it fails instead, so CI can never pass
//! with a skipped test. A test whose subject is hardware the machine lacks (an instruction
//! set) reports that and is no skip.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment switch that turns every skip into a failure.
pub const NO_SKIP: &str = "SCALEBOOK_NO_SKIP";

/// Skip the calling test `test` because of `why` (see the module docs); fails under
/// [`NO_SKIP`].
pub fn skip(test: &str, why: &str) {
    assert!(
        std::env::var_os(NO_SKIP).is_none(),
        "{test} cannot run here: {why} ({NO_SKIP} is set: no test may skip)"
    );
    let _ = writeln!(std::io::stdout(), "SKIPPED {test}: {why}");
    if SKIPPED.fetch_add(1, Ordering::SeqCst) == 0 {
        // SAFETY: registering a handler that only reads an atomic and writes to stdout.
        unsafe {
            libc::atexit(say_skipped);
        }
    }
}

/// Tests of this process that skipped.
static SKIPPED: AtomicUsize = AtomicUsize::new(0);

/// At the end of the test run, below the harness's own summary: how many tests skipped (the
/// harness counts them as passed).
extern "C" fn say_skipped() {
    let n = SKIPPED.load(Ordering::SeqCst);
    let _ = writeln!(
        std::io::stdout(),
        "SKIPPED: {n} test(s) of this binary could not run on this machine and passed without \
         checking anything (each said why above; `{NO_SKIP}=1` makes them fail)"
    );
    let _ = std::io::stdout().flush();
}

/// Say something about the machine on the real stdout (not captured by the test harness).
pub fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// The published scaling-run data (`svg_extracted_data.csv` and friends): the folder
/// `SCALEBOOK_REFERENCE_DATA` names, else `../shared/data` beside the repository, when it
/// exists; never copied into the repository.
pub fn reference_data() -> Option<PathBuf> {
    std::env::var_os("SCALEBOOK_REFERENCE_DATA")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data")))
        .filter(|dir| dir.join("svg_extracted_data.csv").is_file())
}

/// A new, empty folder under the system's temporary folder, unique to this call.
pub fn fresh_dir(label: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "scalebook-{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the temporary folder is writable");
    dir
}
