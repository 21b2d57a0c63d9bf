//! No value of a study file or of the command line can add a command to the batch script:
//! each one reaching `#SBATCH` gets the one check (exit 2 naming the field or flag), and the
//! paths that reach the script's command line are quoted.

use super::SIX;
use super::support::run;
use crate::support::{assert_no_crash, fresh_dir, stderr, stdout};

/// Values that would start a command, split a word, or change how sbatch reads a line.
const HOSTILE: [&str; 9] = [
    "gpu\ntouch /tmp/scalebook-injected #",
    "gpu\rtouch",
    "a b",
    "a\"b",
    "a'b",
    "$(touch /tmp/scalebook-injected)",
    "`touch /tmp/scalebook-injected`",
    "a;touch",
    "a\\b",
];

/// `scalebook run STUDY --store STORE --executor slurm --dry-run EXTRA…`.
fn dry_run(study: &str, store: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let base = [
        "run",
        study,
        "--store",
        store.to_str().unwrap(),
        "--executor",
        "slurm",
        "--dry-run",
    ];
    run(&[&base[..], extra].concat(), &[])
}

/// The lines of a script that bash would run: all but comments and blank lines.
fn commands(script: &str) -> Vec<&str> {
    script
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect()
}

#[test]
fn every_study_field_refuses_a_value_that_could_inject() {
    let dir = fresh_dir("slurm-hostile-fields");
    for field in [
        "partition",
        "account",
        "qos",
        "gres",
        "time",
        "mem",
        "extra_args",
    ] {
        for (i, value) in HOSTILE.iter().enumerate() {
            let value = if field == "extra_args" {
                format!(
                    "[{}]",
                    serde_json::to_string(&format!("--x={value}")).unwrap()
                )
            } else {
                serde_json::to_string(value).unwrap()
            };
            let study = dir.join(format!("{field}-{i}.yaml"));
            let text = SIX.replace(
                "fits:",
                &format!("execution:\n  slurm:\n    {field}: {value}\nfits:"),
            );
            std::fs::write(&study, text).unwrap();
            let s = study.to_str().unwrap();
            let out = run(&["validate", s], &[]);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{field} {value}: {}",
                stderr(&out)
            );
            assert!(
                stderr(&out).contains(&format!("execution.slurm.{field}")),
                "{field} {value}: {}",
                stderr(&out)
            );
            let dry = dry_run(s, &dir.join("store"), &[]);
            assert_eq!(
                dry.status.code(),
                Some(2),
                "{field} {value}: {}",
                stderr(&dry)
            );
            assert_eq!(stdout(&dry), "", "{field} {value}: a script was printed");
            assert_no_crash(&stderr(&dry), &study);
        }
    }
}

#[test]
fn every_override_refuses_a_value_that_could_inject() {
    let dir = fresh_dir("slurm-hostile-overrides");
    let study = dir.join("six.yaml");
    std::fs::write(&study, SIX).unwrap();
    let (s, store) = (study.to_str().unwrap(), dir.join("store"));
    for flag in ["partition", "account", "qos", "gres", "time", "mem", "arg"] {
        for value in HOSTILE {
            let value = if flag == "arg" {
                format!("--x={value}")
            } else {
                value.to_string()
            };
            let out = dry_run(s, &store, &[&format!("--slurm-{flag}={value}")]);
            assert_eq!(
                out.status.code(),
                Some(2),
                "--slurm-{flag} {value:?}: {}",
                stderr(&out)
            );
            assert_eq!(
                stdout(&out),
                "",
                "--slurm-{flag} {value:?}: a script was printed"
            );
            assert!(
                stderr(&out).contains(&format!("--slurm-{flag}")),
                "--slurm-{flag} {value:?}: {}",
                stderr(&out)
            );
        }
    }
    // Options scalebook sets itself are refused, not silently doubled.
    let out = dry_run(s, &store, &["--slurm-arg=--output=/tmp/x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_store_or_binary_of_any_spelling_stays_one_quoted_word() {
    let dir = fresh_dir("slurm-hostile-paths");
    // A study-file store holding a newline is refused by validate.
    let study = dir.join("newline.yaml");
    std::fs::write(
        &study,
        format!("store: \"results\\ntouch /tmp/scalebook-injected #\"\n{SIX}"),
    )
    .unwrap();
    let out = run(&["validate", study.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("store"), "{}", stderr(&out));
    // A command-line store and binary with spaces, quotes, `$()` and backticks: one script
    // command, carrying each path as one argument, and no path on an `#SBATCH` line.
    let study = dir.join("six.yaml");
    std::fs::write(&study, SIX).unwrap();
    let weird = "my store 'q' \"d\" $(touch x) `y` ;z";
    let store = dir.join(weird);
    let binary = dir.join("bin $(touch x)/scale book");
    let out = dry_run(
        study.to_str().unwrap(),
        &store,
        &["--slurm-binary", binary.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let script = stdout(&out);
    let lines = commands(&script);
    assert_eq!(lines.len(), 1, "{script}");
    let words = shlex::split(lines[0]).expect("the command line parses");
    assert_eq!(words[0], "exec");
    assert_eq!(words[1], binary.to_str().unwrap(), "{script}");
    let submission = &words[words.iter().position(|w| w == "--submission").unwrap() + 1];
    assert!(submission.starts_with(store.to_str().unwrap()), "{script}");
    assert!(
        script
            .lines()
            .any(|l| l == "#SBATCH --output=logs/%A_%a.out"),
        "{script}"
    );
    for line in script.lines().filter(|l| l.starts_with("#SBATCH")) {
        assert!(!line.contains(weird), "a path on an #SBATCH line: {line}");
    }
}
