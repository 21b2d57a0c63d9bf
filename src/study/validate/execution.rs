//! The `execution:` section (scheduling options, never part of a run's identity).

use super::Validator;
use crate::study::execution::{SlurmOptions, is_slurm_memory, is_slurm_time};
use crate::study::file::{ExecutionFile, SlurmFile};

impl Validator {
    pub(super) fn execution(&mut self, execution: Option<&ExecutionFile>) -> SlurmOptions {
        let Some(s) = execution.and_then(|e| e.slurm.as_ref()) else {
            return SlurmOptions::default();
        };
        self.slurm(s)
    }

    fn slurm(&mut self, s: &SlurmFile) -> SlurmOptions {
        let mut word = |field: &str, value: &Option<String>| -> Option<String> {
            let v = value.as_ref()?;
            if v.trim().is_empty() || v.chars().any(char::is_whitespace) {
                self.error(
                    format!("execution.slurm.{field}"),
                    format!("`{v}` must be one word"),
                );
                return None;
            }
            Some(v.clone())
        };
        let partition = word("partition", &s.partition);
        let account = word("account", &s.account);
        let qos = word("qos", &s.qos);
        let gres = word("gres", &s.gres);
        let time = word("time", &s.time);
        let mem = word("mem", &s.mem);
        if let Some(t) = &time
            && !is_slurm_time(t)
        {
            self.error(
                "execution.slurm.time",
                format!("`{t}` is not a Slurm time limit (minutes, `H:MM:SS` or `D-HH:MM:SS`)"),
            );
        }
        if let Some(m) = &mem
            && !is_slurm_memory(m)
        {
            self.error(
                "execution.slurm.mem",
                format!("`{m}` is not a Slurm memory size (`500M`, `4G`)"),
            );
        }
        let cpus = s
            .cpus_per_task
            .map(|_| self.count("execution.slurm.cpus_per_task", s.cpus_per_task, 1, 1, 4096));
        let extra_args = s.extra_args.clone().unwrap_or_default();
        for (i, arg) in extra_args.iter().enumerate() {
            if !arg.starts_with('-') || arg.contains('\n') {
                self.error(
                    format!("execution.slurm.extra_args[{i}]"),
                    format!("`{arg}` is not an sbatch option (`--constraint=a100`)"),
                );
            }
        }
        let binary = s.binary.as_ref().map(|b| self.dir.join(b));
        SlurmOptions {
            partition,
            account,
            qos,
            time,
            cpus_per_task: cpus,
            mem,
            gres,
            extra_args,
            binary: binary.map(|b| std::path::absolute(&b).unwrap_or(b)),
        }
    }
}
