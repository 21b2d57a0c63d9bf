//! How a study's runs are named. A run's name (`l2-d64-t1e5`, with `-lr<η>` in a sweep) and
//! its point (the name without the learning rate) are what the fits, the chapter and the
//! Slurm watcher join runs by, so no two may collide; labels that are unique keep the form
//! they always had (records are found by name: a rename would retrain a published study).

use sha2::{Digest, Sha256};

use super::plan::RunSpec;
use super::{ModelSize, ModelSpec};
use crate::data::identity::hex;

/// For each size, whether another size shares its `l<layers>-d<d_model>` name (they differ
/// only in heads): such sizes, and their runs, carry their heads in their names.
pub fn shares_short_name<'a>(sizes: impl Iterator<Item = &'a ModelSize> + Clone) -> Vec<bool> {
    let short = |s: &ModelSize| (s.layers, s.d_model);
    sizes
        .clone()
        .map(|s| sizes.clone().filter(|o| short(o) == short(s)).count() > 1)
        .collect()
}

/// The sizes (indices) whose short name another size shares.
pub(super) fn shared_shape_names(model: &ModelSpec) -> Vec<usize> {
    shares_short_name(model.sizes.iter())
        .into_iter()
        .enumerate()
        .filter_map(|(i, shared)| shared.then_some(i))
        .collect()
}

/// Names and points are what the fits, the chapter and the Slurm watcher join runs by, so
/// no two may share one: a point label two different (shape, tokens, budget) points would
/// share (two budgets printing alike) gains a digest of its point, and a name two keys would
/// share gains its key's first digits. Labels that are unique — every published study's —
/// are left as they are.
pub(super) fn disambiguate(specs: &mut [RunSpec]) {
    use std::collections::{BTreeMap, BTreeSet};
    let point_of = |s: &RunSpec| {
        let m = s.config();
        hex(&Sha256::digest(
            format!(
                "{} {} {} {} {:?}",
                m.layers,
                m.d_model,
                m.heads,
                s.tokens(),
                s.budget.map(f64::to_bits)
            )
            .as_bytes(),
        ))
    };
    let mut points: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in specs.iter() {
        points
            .entry(s.point().to_string())
            .or_default()
            .insert(point_of(s));
    }
    for s in specs.iter_mut() {
        if points[s.point()].len() > 1 {
            let old = s.point().to_string();
            let point = format!("{old}-p{}", &point_of(s)[..6]);
            s.name = s.name.replacen(&old, &point, 1);
            s.point = point;
        }
    }
    let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in specs.iter() {
        names
            .entry(s.name.clone())
            .or_default()
            .insert(s.key.clone());
    }
    for s in specs.iter_mut() {
        if names[&s.name].len() > 1 {
            s.name = format!("{}-k{}", s.name, &s.key[..6]);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::study::from_bytes;
    use crate::study::plan::plan;

    /// Labels that would collide (two points printing alike) are told apart; unique labels
    /// are left alone.
    #[test]
    fn colliding_labels_are_told_apart() {
        let text = "version: 1\nname: keys\nmodel:\n  context: 64\n  sizes:\n    - { layers: 2, d_model: 32, heads: 2 }\n    - { layers: 2, d_model: 64, heads: 4 }\ntokens: [1e5, 2e5]\ntrain: { batch: 8, lr: 3e-3 }\n";
        let study = from_bytes(text.as_bytes(), Path::new("keys.yaml")).unwrap();
        let mut runs = plan(&study).unwrap();
        let before: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
        disambiguate(&mut runs);
        assert_eq!(
            runs.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
            before
        );
        // Two different points under one label (as two budgets printing alike would be).
        runs[1].point = runs[0].point.clone();
        runs[1].name = runs[0].name.clone();
        disambiguate(&mut runs);
        assert_ne!(runs[0].point, runs[1].point);
        assert_ne!(runs[0].name, runs[1].name);
        assert!(
            runs[0].name.starts_with("l2-d32-t1e5-p"),
            "{}",
            runs[0].name
        );
    }
}
