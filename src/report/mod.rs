//! The study's book chapter: charts, tables, narrative templates, the reproducibility
//! manifest and the in-process mdBook build. Filled in by the report issue; the study's
//! [`crate::study::Section`]s say what to show.
