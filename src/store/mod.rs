//! The content-addressed run store (`runs/<name>-<key12>/`), locking, and collection of
//! results into polars DataFrames. Filled in by the run-store issue; run keys and directory
//! names come from [`crate::study::RunSpec`].
