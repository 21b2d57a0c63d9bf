//! Where and how a study's runs are scheduled: options of the Slurm executor. Never part of
//! a run's identity — a run trained locally and on a cluster is one entry.

use std::path::PathBuf;

/// `execution.slurm` of the study file, after `--slurm-…` overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Slurm's time format; `None`: from the plan's estimate.
    pub time: Option<String>,
    pub cpus_per_task: Option<u64>,
    pub mem: Option<String>,
    pub gres: Option<String>,
    pub extra_args: Vec<String>,
    /// The binary the nodes run (absolute); `None`: this one.
    pub binary: Option<PathBuf>,
}

/// The one check of every value that reaches a batch script's `#SBATCH` lines, for the study
/// file's `execution.slurm` and the `--slurm-…` overrides alike: `None` when `value` is fine
/// as option `name` (`partition`, `account`, `qos`, `gres`, `time`, `mem`, `extra_args`),
/// else why not. Beyond each option's own format, no value may hold a control character (a
/// newline would start a command of its own), whitespace, a quote, a backslash, `$`, a
/// backtick, `;` or `#`: an `#SBATCH` line is read by sbatch, which splits it at whitespace
/// and strips quotes, and the script is run by bash.
pub fn slurm_option_problem(name: &str, value: &str) -> Option<String> {
    const UNSAFE: [char; 7] = ['"', '\'', '\\', '$', '`', ';', '#'];
    if value.trim().is_empty() {
        return Some("is empty".into());
    }
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || UNSAFE.contains(c))
    {
        return Some(format!(
            "`{}` holds {}: one word without spaces, quotes or shell characters",
            value.escape_debug(),
            describe(c)
        ));
    }
    match name {
        "time" if !is_slurm_time(value) => Some(format!(
            "`{value}` is not a Slurm time limit (minutes, `H:MM:SS` or `D-HH:MM:SS`)"
        )),
        "mem" if !is_slurm_memory(value) => Some(format!(
            "`{value}` is not a Slurm memory size (`500M`, `4G`)"
        )),
        "extra_args" => extra_arg_problem(value),
        _ => None,
    }
}

/// An extra sbatch argument is one option (`--constraint=a100`), never one scalebook sets
/// itself: the array, the log files and the working directory its watcher relies on.
fn extra_arg_problem(arg: &str) -> Option<String> {
    const OWN: [&str; 10] = [
        "--array",
        "-a",
        "--output",
        "-o",
        "--error",
        "-e",
        "--chdir",
        "-D",
        "--job-name",
        "-J",
    ];
    if !arg.starts_with('-') {
        return Some(format!(
            "`{arg}` is not an sbatch option (`--constraint=a100`)"
        ));
    }
    let option = arg.split('=').next().unwrap_or(arg);
    let short = OWN
        .iter()
        .find(|o| !o.starts_with("--") && arg.starts_with(**o));
    if let Some(own) = OWN.iter().find(|o| **o == option).or(short) {
        return Some(format!(
            "`{arg}`: scalebook sets `{own}` itself (its watcher reads the array's logs)"
        ));
    }
    None
}

fn describe(c: char) -> String {
    match c {
        '\n' => "a newline".into(),
        '\r' => "a carriage return".into(),
        '\t' => "a tab".into(),
        ' ' => "a space".into(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("`{c}`"),
    }
}

impl SlurmOptions {
    /// The first value the batch script could not carry safely, as (option, why): the
    /// script refuses to render it, whatever let it through.
    pub fn problem(&self) -> Option<(String, String)> {
        let fields = [
            ("partition", &self.partition),
            ("account", &self.account),
            ("qos", &self.qos),
            ("time", &self.time),
            ("mem", &self.mem),
            ("gres", &self.gres),
        ];
        fields
            .into_iter()
            .filter_map(|(name, v)| v.as_ref().map(|v| (name, v)))
            .chain(self.extra_args.iter().map(|a| ("extra_args", a)))
            .find_map(|(name, v)| slurm_option_problem(name, v).map(|why| (name.to_string(), why)))
    }
}

/// Whether `text` is a Slurm time limit: minutes, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`
/// or `D-HH:MM:SS`.
pub fn is_slurm_time(text: &str) -> bool {
    let (days, rest) = match text.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, text),
    };
    let number = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
    if days.is_some_and(|d| !number(d)) {
        return false;
    }
    let parts: Vec<&str> = rest.split(':').collect();
    parts.len() <= 3 && parts.iter().all(|p| number(p))
}

/// Whether `text` is a Slurm memory size: a whole number with an optional K, M, G or T.
pub fn is_slurm_memory(text: &str) -> bool {
    let digits = text.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    text.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_formats() {
        for ok in ["30", "1:30:00", "2-00:00:00", "0-12", "10:00"] {
            assert!(is_slurm_time(ok), "{ok}");
        }
        for bad in ["", "1h", "1:2:3:4", "x-1", "-5", "1.5"] {
            assert!(!is_slurm_time(bad), "{bad}");
        }
        for ok in ["4G", "500M", "1024", "2t"] {
            assert!(is_slurm_memory(ok), "{ok}");
        }
        for bad in ["", "G", "4GB", "1.5G", "-1"] {
            assert!(!is_slurm_memory(bad), "{bad}");
        }
    }

    #[test]
    fn no_value_can_carry_a_command_into_the_script() {
        let hostile = [
            "gpu\ntouch /tmp/x",
            "gpu\rtouch",
            "a b",
            "x\"y",
            "x'y",
            "$(touch /tmp/x)",
            "`touch /tmp/x`",
            "a;b",
            "a#b",
            "a\\b",
            "a\u{0}b",
            "a\tb",
            "",
            " ",
        ];
        for name in [
            "partition",
            "account",
            "qos",
            "gres",
            "time",
            "mem",
            "extra_args",
        ] {
            for value in hostile {
                if name == "extra_args" && value.is_empty() {
                    continue;
                }
                let value = if name == "extra_args" {
                    format!("--x={value}")
                } else {
                    value.to_string()
                };
                assert!(
                    slurm_option_problem(name, &value).is_some(),
                    "{name} accepted {value:?}"
                );
            }
        }
        for (name, ok) in [
            ("partition", "gpu-a100"),
            ("gres", "gpu:a100:2"),
            ("account", "lab.ml_2"),
            ("time", "1:30:00"),
            ("mem", "4G"),
            ("extra_args", "--constraint=a100|h100"),
            ("extra_args", "--exclusive"),
        ] {
            assert_eq!(slurm_option_problem(name, ok), None, "{name} {ok}");
        }
        for own in [
            "--array=0-3",
            "-a0-3",
            "--output=x",
            "-o",
            "--chdir=/",
            "-D/tmp",
        ] {
            assert!(slurm_option_problem("extra_args", own).is_some(), "{own}");
        }
    }
}
