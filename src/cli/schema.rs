//! `scalebook schema`: the study file's JSON Schema (draft 7, which YAML editors support),
//! generated from the same serde types that parse study files.

use schemars::generate::SchemaSettings;

use super::{Failure, exit};
use crate::study::file::StudyFile;

#[derive(Debug, clap::Args)]
pub struct Args {}

/// The schema as pretty JSON.
pub fn schema_json() -> Result<String, serde_json::Error> {
    let mut schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<StudyFile>();
    schema.insert("title".into(), "scalebook study file".into());
    serde_json::to_string_pretty(&schema)
}

pub fn run(_: &Args) -> Result<(), Failure> {
    let json = schema_json().map_err(|e| Failure::new(exit::INTERNAL, e.to_string()))?;
    println!("{json}");
    Ok(())
}
