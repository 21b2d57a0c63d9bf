//! `scalebook run --executor slurm`'s options: each `--slurm-…` overrides the study file's
//! `execution.slurm`; `--dry-run` prints the batch script and submits nothing.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{Failure, exit};
use crate::exec::slurm::Slurm;
use crate::study::{RunSpec, Study};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct SlurmArgs {
    /// With --executor slurm: print the batch script that would be submitted, submit nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Slurm partition (overrides execution.slurm.partition)
    #[arg(long, value_name = "NAME")]
    pub slurm_partition: Option<String>,
    /// Slurm account
    #[arg(long, value_name = "NAME")]
    pub slurm_account: Option<String>,
    /// Slurm QoS
    #[arg(long, value_name = "NAME")]
    pub slurm_qos: Option<String>,
    /// Time limit per task (`30`, `1:30:00`, `2-00:00:00`) [default: 3 × the plan's estimate]
    #[arg(long, value_name = "TIME")]
    pub slurm_time: Option<String>,
    /// CPUs per task [default: --threads-per-job, else 1]
    #[arg(long, value_name = "N", value_parser = super::parse_jobs)]
    pub slurm_cpus: Option<usize>,
    /// Memory per task (`4G`) [default: twice the peak of the study's finished runs of the
    /// same shapes, when every shape has one]
    #[arg(long, value_name = "SIZE")]
    pub slurm_mem: Option<String>,
    /// Generic resources per task (`gpu:1`)
    #[arg(long, value_name = "GRES")]
    pub slurm_gres: Option<String>,
    /// One more sbatch argument (repeatable): `--slurm-arg=--constraint=a100`
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub slurm_arg: Vec<String>,
    /// The scalebook binary the nodes run [default: this one]
    #[arg(long, value_name = "PATH")]
    pub slurm_binary: Option<PathBuf>,
}

impl SlurmArgs {
    /// Whether any Slurm option was given (they need `--executor slurm`).
    pub fn any(&self) -> bool {
        self.dry_run
            || self.slurm_partition.is_some()
            || self.slurm_account.is_some()
            || self.slurm_qos.is_some()
            || self.slurm_time.is_some()
            || self.slurm_cpus.is_some()
            || self.slurm_mem.is_some()
            || self.slurm_gres.is_some()
            || !self.slurm_arg.is_empty()
            || self.slurm_binary.is_some()
    }

    /// The Slurm executor for `study`: the study file's options with these overrides.
    pub fn executor(
        &self,
        study: &Study,
        specs: &[RunSpec],
        store: &crate::store::Store,
        jobs: Option<usize>,
        threads: Option<usize>,
    ) -> Result<Slurm, Failure> {
        let usage = |m: String| Failure::new(exit::USAGE, m);
        let mut o = study.slurm.clone();
        let set = |slot: &mut Option<String>, value: &Option<String>| {
            if value.is_some() {
                *slot = value.clone();
            }
        };
        set(&mut o.partition, &self.slurm_partition);
        set(&mut o.account, &self.slurm_account);
        set(&mut o.qos, &self.slurm_qos);
        set(&mut o.time, &self.slurm_time);
        set(&mut o.mem, &self.slurm_mem);
        set(&mut o.gres, &self.slurm_gres);
        o.extra_args.extend(self.slurm_arg.iter().cloned());
        // The study file's values passed `validate`, so a problem of the merged options is
        // an override's: the one check every `#SBATCH` value gets, named by its flag.
        if let Some((field, why)) = o.problem() {
            let flag = if field == "extra_args" { "arg" } else { &field };
            return Err(usage(format!("--slurm-{flag}: {why}")));
        }
        if let Some(c) = self.slurm_cpus {
            o.cpus_per_task = Some(c as u64);
        }
        let binary = match self.slurm_binary.clone().or(o.binary.clone()) {
            Some(b) => std::path::absolute(&b).unwrap_or(b),
            None => super::current_exe()?,
        };
        let threads = o.cpus_per_task.map(|c| c as usize).or(threads).unwrap_or(1);
        // Each run's time: the default time limit, and which short runs share a task.
        let e = crate::pipeline::estimate::estimate(specs, Some(store));
        let estimates = specs.iter().map(|s| s.key.clone()).zip(e.seconds).collect();
        Ok(Slurm {
            options: o,
            binary,
            threads,
            throttle: jobs,
            estimates,
            memory: memory_by_shape(specs, store),
        })
    }
}

/// Each planned run's expected peak memory: the largest peak of the study's finished runs of
/// its shape (model, context, batch) — memory barely grows with tokens (the memory law's
/// exponent of D is near 0).
fn memory_by_shape(specs: &[RunSpec], store: &crate::store::Store) -> HashMap<String, u64> {
    let shape = |s: &RunSpec| {
        let m = &s.identity.model;
        (
            m.layers,
            m.d_model,
            m.heads,
            m.context,
            s.identity.train.batch,
        )
    };
    let mut peaks: HashMap<(u64, u64, u64, u64, u64), u64> = HashMap::new();
    for spec in specs {
        if let crate::store::EntryState::Done(e) = store.inspect(spec)
            && let Some(peak) = e.result.peak_rss_bytes
        {
            let p = peaks.entry(shape(spec)).or_default();
            *p = (*p).max(peak);
        }
    }
    specs
        .iter()
        .filter_map(|s| peaks.get(&shape(s)).map(|&p| (s.key.clone(), p)))
        .collect()
}
