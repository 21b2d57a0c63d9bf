//! The batch script of a submission: one array, each task running `scalebook slurm-task`
//! on its run. Printed as is by `scalebook run --executor slurm --dry-run`.
//!
//! No path reaches an `#SBATCH` line: sbatch runs in the submission's folder, so the logs'
//! `--output` is relative to it, and a store anywhere (spaces included) needs no quoting
//! there. Every option value passed the one check of
//! [`slurm_option_problem`](crate::study::execution::slurm_option_problem), asked again
//! here; the two paths on the command line are shell-quoted.

use std::path::Path;

use crate::study::execution::SlurmOptions;

pub struct Input<'a> {
    pub study: &'a str,
    /// Runs in the submission.
    pub runs: usize,
    /// The submission's folder in the store.
    pub dir: &'a Path,
    pub tasks: usize,
    pub throttle: Option<usize>,
    pub cpus: usize,
    /// Slurm's time format.
    pub time: Option<String>,
    /// Slurm's memory format.
    pub mem: Option<String>,
    pub options: &'a SlurmOptions,
    pub binary: &'a Path,
}

fn quote(text: &str) -> String {
    shlex::try_quote(text)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| format!("'{}'", text.replace('\'', "'\\''")))
}

/// The logs of the array's tasks, relative to the submission's folder (sbatch's working
/// directory).
pub const LOG_PATTERN: &str = "logs/%A_%a.out";

/// The array's name: the study and the submission's folder, so a submission whose job id
/// was never saved (its submitter killed right after `sbatch`) is still found by name.
pub fn job_name(study: &str, dir: &Path) -> String {
    let submission = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("scalebook-{study}-{submission}")
}

/// The script's text; `Err` names a value it cannot carry safely.
pub fn render(i: &Input) -> Result<String, String> {
    let o = i.options;
    if let Some((name, why)) = o.problem() {
        return Err(format!("Slurm option {name}: {why}"));
    }
    for path in [i.binary, i.dir] {
        if path.to_string_lossy().chars().any(char::is_control) {
            return Err(format!(
                "`{}` holds a control character; a batch script cannot name it",
                path.display().to_string().escape_debug()
            ));
        }
    }
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!(
            "# scalebook: {} run(s) of study `{}` in {} array task(s)",
            i.runs, i.study, i.tasks
        ),
        format!("#SBATCH --job-name={}", job_name(i.study, i.dir)),
        format!(
            "#SBATCH --array=0-{}{}",
            i.tasks.saturating_sub(1),
            i.throttle.map(|k| format!("%{k}")).unwrap_or_default()
        ),
        format!("#SBATCH --output={LOG_PATTERN}"),
        format!("#SBATCH --cpus-per-task={}", i.cpus),
        // A requeued task (preemption, node failure, `scontrol requeue`) trains its run
        // again from the start; a half-written entry is never published.
        "#SBATCH --requeue".to_string(),
    ];
    let mut option = |name: &str, value: &Option<String>| {
        if let Some(v) = value {
            lines.push(format!("#SBATCH --{name}={v}"));
        }
    };
    option("time", &i.time);
    option("mem", &i.mem);
    option("partition", &o.partition);
    option("account", &o.account);
    option("qos", &o.qos);
    option("gres", &o.gres);
    for arg in &o.extra_args {
        lines.push(format!("#SBATCH {arg}"));
    }
    lines.push(format!(
        "exec {} slurm-task --submission {} --index \"$SLURM_ARRAY_TASK_ID\"",
        quote(&i.binary.display().to_string()),
        quote(&i.dir.display().to_string())
    ));
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_carries_every_option() {
        let options = SlurmOptions {
            partition: Some("gpu".into()),
            account: Some("lab".into()),
            qos: Some("high".into()),
            mem: Some("4G".into()),
            gres: Some("gpu:1".into()),
            extra_args: vec!["--constraint=a100".into()],
            ..SlurmOptions::default()
        };
        let text = render(&Input {
            study: "s",
            runs: 30,
            dir: Path::new("/store/slurm/1-2"),
            tasks: 12,
            throttle: Some(4),
            cpus: 2,
            time: Some("30".into()),
            mem: Some("4G".into()),
            options: &options,
            binary: Path::new("/opt/my tools/scalebook"),
        })
        .unwrap();
        for line in [
            "#SBATCH --array=0-11%4",
            "#SBATCH --output=logs/%A_%a.out",
            "#SBATCH --cpus-per-task=2",
            "#SBATCH --time=30",
            "#SBATCH --mem=4G",
            "#SBATCH --partition=gpu",
            "#SBATCH --account=lab",
            "#SBATCH --qos=high",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --constraint=a100",
            "exec '/opt/my tools/scalebook' slurm-task --submission /store/slurm/1-2 --index \"$SLURM_ARRAY_TASK_ID\"",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
