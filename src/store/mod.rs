//! The content-addressed run store (`runs/<name>-<key12>/`), locking, and collection of
//! results into polars DataFrames. Run keys and directory names come from
//! [`crate::study::RunSpec`]; [`atomic`] makes every write crash-safe.

pub mod atomic;
