//! The `execution:` section (scheduling options, never part of a run's identity).

use super::Validator;
use crate::study::execution::{SlurmOptions, slurm_option_problem};
use crate::study::file::{ExecutionFile, SlurmFile};

impl Validator {
    pub(super) fn execution(&mut self, execution: Option<&ExecutionFile>) -> SlurmOptions {
        let Some(s) = execution.and_then(|e| e.slurm.as_ref()) else {
            return SlurmOptions::default();
        };
        self.slurm(s)
    }

    fn slurm(&mut self, s: &SlurmFile) -> SlurmOptions {
        // The one check every `#SBATCH` value gets (the `--slurm-…` overrides get it too).
        let mut check = |field: &str, value: &Option<String>| -> Option<String> {
            let v = value.as_ref()?;
            match slurm_option_problem(field, v) {
                Some(why) => {
                    self.error(format!("execution.slurm.{field}"), why);
                    None
                }
                None => Some(v.clone()),
            }
        };
        let partition = check("partition", &s.partition);
        let account = check("account", &s.account);
        let qos = check("qos", &s.qos);
        let gres = check("gres", &s.gres);
        let time = check("time", &s.time);
        let mem = check("mem", &s.mem);
        let cpus = s
            .cpus_per_task
            .map(|_| self.count("execution.slurm.cpus_per_task", s.cpus_per_task, 1, 1, 4096));
        let extra_args = s.extra_args.clone().unwrap_or_default();
        for (i, arg) in extra_args.iter().enumerate() {
            if let Some(why) = slurm_option_problem("extra_args", arg) {
                self.error(format!("execution.slurm.extra_args[{i}]"), why);
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
