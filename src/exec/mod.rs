//! Executors that train the planned runs: a local worker pool, Slurm job arrays, and a mock
//! executor for tests. Filled in by the run-store issue.
