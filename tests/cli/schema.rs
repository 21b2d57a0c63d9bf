//! `scalebook schema`: a JSON Schema that covers every key of the study file.

use serde_json::Value;

use crate::support::{scalebook, stdout};

#[test]
fn schema_describes_every_section() {
    let out = scalebook(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let schema: Value = serde_json::from_str(&stdout(&out)).expect("valid JSON");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    let props = schema["properties"].as_object().unwrap();
    for key in [
        "version", "name", "title", "seed", "data", "model", "tokens", "isoflop", "train", "fits",
        "holdout", "final", "report", "checks", "results", "store",
    ] {
        assert!(props.contains_key(key), "schema lacks `{key}`");
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, vec!["version", "name"]);
    // Unknown keys are rejected by editors too.
    assert_eq!(schema["additionalProperties"], false);
    let size = &schema["definitions"]["SizeFile"];
    assert_eq!(size["additionalProperties"], false);
    assert!(size["properties"]["heads"]["description"].is_string());
}
