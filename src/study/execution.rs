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
}
