//! CLI tests: run the real `scalebook` binary on fixture studies and assert exit codes,
//! messages and output. One test binary with a module per command (as mdBook's testsuite).

mod batch;
mod branches;
mod conformance;
mod external;
mod external_metrics;
mod final_limits;
mod fit;
mod inputs;
mod integrity;
mod leave_one_out;
mod measured;
mod metric;
mod pinned;
mod plan;
mod repeated;
mod report;
mod run_store;
mod schema;
mod slurm;
mod support;
mod tasks;
mod train_point;
mod transfer;
mod validate;
mod verify;
