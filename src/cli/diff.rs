//! `scalebook diff A B [--format table|md|json]`: compare two versions of a study — two
//! study files, one study at two git revisions (`STUDY@REV`), or two results folders — run by
//! run and fitted number by fitted number. Exit 0 whenever it could compare, 2 on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::producer::ProducerArg;
use super::{Failure, exit, load_study};
use crate::pipeline::diff::{Diff, Side, diff};
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Table,
    /// Markdown, for a pull-request comment (a summary first).
    Md,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The first version: a study file, STUDY@REV (a git revision), or a results folder
    pub a: String,
    /// The second version, in any of the same forms
    pub b: String,
    #[arg(long, value_enum, default_value_t = DiffFormat::Table)]
    pub format: DiffFormat,
    #[command(flatten)]
    pub producer: ProducerArg,
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let scratch = std::env::temp_dir().join(format!("scalebook-diff-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let sides = side(&args.a, args, &scratch.join("a"))
        .and_then(|a| side(&args.b, args, &scratch.join("b")).map(|b| (a, b)));
    let _ = std::fs::remove_dir_all(&scratch);
    let (a, b) = sides?;
    let d = diff(&a, &b);
    let text = match args.format {
        DiffFormat::Json => serde_json::to_string_pretty(&d).expect("plain data") + "\n",
        DiffFormat::Md => markdown(&d),
        DiffFormat::Table => table(&d),
    };
    print!("{text}");
    Ok(())
}

/// Read one side: a study file, `STUDY@REV`, or a results folder.
fn side(arg: &str, args: &Args, scratch: &Path) -> Result<Side, Failure> {
    let path = Path::new(arg);
    if !path.exists()
        && let Some((file, rev)) = arg.rsplit_once('@')
    {
        let study = at_revision(Path::new(file), rev, scratch)?;
        return study_side(arg, &study, args);
    }
    if path.is_file() {
        return study_side(arg, path, args);
    }
    if path.join("runs").is_dir() {
        let store = Store::existing(path).map_err(|e| usage(format!("{arg}: {e}")))?;
        return Ok(Side::of_folder(arg.to_string(), &store)?);
    }
    Err(usage(format!(
        "{arg}: not a study file, STUDY@REV or a results folder (one with runs/)"
    )))
}

fn usage(message: String) -> Failure {
    Failure::new(exit::USAGE, message)
}

/// A study file's side: its records in its own store (`store:`), else the default store.
fn study_side(label: &str, file: &Path, args: &Args) -> Result<Side, Failure> {
    let study = args.producer.apply(load_study(file)?)?;
    if study.training().is_none() {
        return Err(usage(format!(
            "{label}: imports its results; there are no runs to compare"
        )));
    }
    let store_arg = super::store_arg::StoreArg { store: None };
    let path = store_arg.path(&study);
    if !path.join("runs").is_dir() {
        return Err(usage(format!(
            "{label}: its run store {} holds no runs",
            path.display()
        )));
    }
    let store = Store::existing(&path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    Ok(Side::of_study(label.to_string(), &study, &store)?)
}

/// Check out the study file's folder as it was at `rev` into `scratch`; the study file there.
fn at_revision(file: &Path, rev: &str, scratch: &Path) -> Result<PathBuf, Failure> {
    let parent = crate::files::folder_of(file);
    let git = |dir: &Path, argv: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(argv)
            .output()
            .map_err(|e| usage(format!("{}@{rev}: cannot run git: {e}", file.display())))
    };
    let top = git(parent, &["rev-parse", "--show-toplevel"])?;
    if !top.status.success() {
        return Err(usage(format!(
            "{}: not inside a git repository",
            file.display()
        )));
    }
    let top = PathBuf::from(String::from_utf8_lossy(&top.stdout).trim());
    let verify = git(
        &top,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )?;
    if !verify.status.success() {
        return Err(usage(format!(
            "{}@{rev}: the revision `{rev}` does not exist",
            file.display()
        )));
    }
    // The folder's path inside the repository (it may no longer exist in the work tree).
    let abs_parent =
        std::fs::canonicalize(parent).map_err(|e| usage(format!("{}: {e}", parent.display())))?;
    let rel_dir = abs_parent
        .strip_prefix(&top)
        .map_err(|_| usage(format!("{}: outside the repository", file.display())))?
        .to_path_buf();
    let name = file
        .file_name()
        .ok_or_else(|| usage(format!("{}: not a file", file.display())))?;
    std::fs::create_dir_all(scratch).map_err(|e| usage(format!("{}: {e}", scratch.display())))?;
    let spec = if rel_dir.as_os_str().is_empty() {
        ".".to_string()
    } else {
        rel_dir.display().to_string()
    };
    let archive = Command::new("git")
        .arg("-C")
        .arg(&top)
        .args(["archive", "--format=tar", rev, "--", &spec])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| usage(format!("cannot run git archive: {e}")))?;
    let untar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(scratch)
        .stdin(archive.stdout.expect("piped"))
        .status()
        .map_err(|e| usage(format!("cannot run tar: {e}")))?;
    let study = scratch.join(&rel_dir).join(name);
    if !untar.success() || !study.is_file() {
        return Err(usage(format!(
            "{}@{rev}: the study file does not exist at that revision",
            file.display()
        )));
    }
    Ok(study)
}

fn num(v: Option<f64>) -> String {
    v.map_or("—".to_string(), |x| format!("{x:.5}"))
}

fn interval(i: Option<[f64; 2]>) -> String {
    i.map_or(String::new(), |[lo, hi]| format!(" [{lo:.4}, {hi:.4}]"))
}

/// The one-paragraph summary both forms open with.
fn summary(d: &Diff) -> String {
    let moved: Vec<String> = d
        .numbers
        .iter()
        .filter(|n| n.a != n.b)
        .take(3)
        .map(|n| {
            format!(
                "{} {} → {}{}",
                n.name,
                num(n.a),
                num(n.b),
                match n.overlap {
                    Some(true) => " (intervals overlap)",
                    Some(false) => " (intervals DISJOINT)",
                    None => "",
                }
            )
        })
        .collect();
    format!(
        "{}{} → {}: {} runs changed, {} added, {} removed, {} the same; {}",
        if d.mock { super::MOCK_LABEL } else { "" },
        d.a,
        d.b,
        d.count("changed"),
        d.count("added"),
        d.count("removed"),
        d.count("same"),
        if moved.is_empty() {
            "no fitted number moved".to_string()
        } else {
            moved.join("; ")
        }
    )
}

fn table(d: &Diff) -> String {
    let mut out = format!("{}\n\nruns:\n", summary(d));
    for r in d
        .runs
        .iter()
        .filter(|r| r.change != "same" || r.loss_a != r.loss_b)
    {
        out.push_str(&format!(
            "  {:24} {:8} {:>9} {:>9}  {}\n",
            r.name,
            r.change,
            num(r.loss_a),
            num(r.loss_b),
            r.fields.join(", ")
        ));
    }
    out.push_str("fitted numbers:\n");
    for n in &d.numbers {
        out.push_str(&format!(
            "  {:34} {}{} → {}{}{}\n",
            n.name,
            num(n.a),
            interval(n.a_interval),
            num(n.b),
            interval(n.b_interval),
            match n.overlap {
                Some(false) => "  (intervals disjoint)",
                _ => "",
            }
        ));
    }
    out.push_str(&format!(
        "warnings: {} → {}\n",
        d.warnings_a.join(", "),
        d.warnings_b.join(", ")
    ));
    out.push_str(&format!("checks: {}\n", checks_line(d)));
    out
}

/// `2 of 2 passed → 1 of 2 passed (failing: …)`.
fn checks_line(d: &Diff) -> String {
    let side = |checks: &[crate::pipeline::diff::CheckOutcome]| {
        if checks.is_empty() {
            return "none".to_string();
        }
        let failing: Vec<&str> = checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.expression.as_str())
            .collect();
        format!(
            "{} of {} passed{}",
            checks.len() - failing.len(),
            checks.len(),
            if failing.is_empty() {
                String::new()
            } else {
                format!(" (failing: `{}`)", failing.join("`, `"))
            }
        )
    };
    format!("{} → {}", side(&d.checks_a), side(&d.checks_b))
}

fn markdown(d: &Diff) -> String {
    let mut out = format!("### scalebook diff\n\n{}\n\n", summary(d));
    out.push_str(
        "| fitted number | before | after | intervals overlap |\n| --- | --- | --- | --- |\n",
    );
    for n in &d.numbers {
        out.push_str(&format!(
            "| {} | {}{} | {}{} | {} |\n",
            n.name,
            num(n.a),
            interval(n.a_interval),
            num(n.b),
            interval(n.b_interval),
            match n.overlap {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            }
        ));
    }
    let shown: Vec<_> = d
        .runs
        .iter()
        .filter(|r| r.change != "same" || r.loss_a != r.loss_b)
        .collect();
    if !shown.is_empty() {
        out.push_str("\n<details><summary>Runs</summary>\n\n| run | change | loss before | loss after | Δ | identity fields |\n| --- | --- | ---: | ---: | ---: | --- |\n");
        for r in shown {
            let delta = r
                .loss_a
                .zip(r.loss_b)
                .map_or("—".to_string(), |(x, y)| format!("{:+.5}", y - x));
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {delta} | {} |\n",
                r.name,
                r.change,
                num(r.loss_a),
                num(r.loss_b),
                r.fields.join(", ")
            ));
        }
        out.push_str("\n</details>\n");
    }
    out.push_str(&format!("\nChecks: {}.\n", checks_line(d)));
    out.push_str(&format!(
        "\nWarnings before: {}; after: {}.\n",
        if d.warnings_a.is_empty() {
            "none".to_string()
        } else {
            format!("`{}`", d.warnings_a.join("`, `"))
        },
        if d.warnings_b.is_empty() {
            "none".to_string()
        } else {
            format!("`{}`", d.warnings_b.join("`, `"))
        },
    ));
    out
}
