//! The `model:` section: explicit shapes and the width/depth rule.

use std::collections::HashMap;

use super::{MAX_CONTEXT, Validator};
use crate::model::{GptConfig, Parametrization, param_counts};
use crate::study::file::{ModelFile, ParametrizationName};
use crate::study::units::Count;
use crate::study::{ModelSize, ModelSpec};

/// Bounds that keep parameter arithmetic exact and catch typos like `d_model: 51200000`.
const MAX_LAYERS: u64 = 4096;
const MAX_D_MODEL: u64 = 1 << 16;

impl Validator {
    pub(super) fn model(&mut self, f: &ModelFile, vocab: Option<u64>) -> Option<ModelSpec> {
        let context = self.count("model.context", Some(f.context), 1, 1, MAX_CONTEXT);
        let tie_embeddings = f.tie_embeddings.unwrap_or(false);
        let vocab = vocab.unwrap_or(256);
        let mut sizes: Vec<(String, ModelSize)> = Vec::new();
        if f.sizes.is_none() && f.rule.is_none() {
            self.error(
                "model.sizes",
                "missing: list the shapes (`- { layers: 2, d_model: 64, heads: 4 }`) or give a `rule:`",
            );
            return None;
        }
        if let Some(list) = &f.sizes {
            if list.is_empty() {
                self.error("model.sizes", "empty list: give at least one model shape");
            }
            for (i, s) in list.iter().enumerate() {
                let field = format!("model.sizes[{i}]");
                if let Some(size) = self.shape(&field, s.layers.0, s.d_model.0, s.heads.0) {
                    let name = match &s.name {
                        Some(n) if n.trim().is_empty() => {
                            self.error(format!("{field}.name"), "must not be empty");
                            size.name
                        }
                        Some(n) => n.clone(),
                        None => size.name,
                    };
                    sizes.push((field, ModelSize { name, ..size }));
                }
            }
        }
        if let Some(rule) = &f.rule {
            let aspect = self.count("model.rule.aspect", rule.aspect, 64, 1, MAX_D_MODEL);
            let head_dim = self.count("model.rule.head_dim", rule.head_dim, 64, 1, MAX_D_MODEL);
            if rule.layers.is_empty() {
                self.error("model.rule.layers", "empty list: give at least one depth");
            }
            for (i, Count(layers)) in rule.layers.iter().enumerate() {
                let field = format!("model.rule.layers[{i}]");
                if *layers == 0 || *layers > MAX_LAYERS {
                    self.error(
                        field,
                        format!("must be between 1 and {MAX_LAYERS}, found {layers}"),
                    );
                    continue;
                }
                // d_model = aspect × layers, rounded to the nearest multiple of head_dim.
                let width = aspect.saturating_mul(*layers);
                let d_model = ((width + head_dim / 2) / head_dim).max(1) * head_dim;
                if let Some(size) = self.shape(&field, *layers, d_model, d_model / head_dim) {
                    sizes.push((field, size));
                }
            }
        }
        // Sizes that differ only in heads: their default names carry the heads too (as their
        // runs' names do), so no two share one.
        let short = |s: &ModelSize| format!("l{}-d{}", s.layers, s.d_model);
        let shared = crate::study::naming::shares_short_name(sizes.iter().map(|(_, s)| s));
        for ((_, s), shared) in sizes.iter_mut().zip(shared) {
            if shared && s.name == short(s) {
                s.name = format!("{}-h{}", short(s), s.heads);
            }
        }
        // The same shape twice would train the same runs twice.
        let mut seen: HashMap<(u64, u64, u64), String> = HashMap::new();
        let mut names: HashMap<String, String> = HashMap::new();
        for (field, s) in &sizes {
            if let Some(first) = seen.get(&(s.layers, s.d_model, s.heads)) {
                self.error(
                    field.clone(),
                    format!(
                        "duplicate shape (layers {}, d_model {}, heads {}): same as {first}",
                        s.layers, s.d_model, s.heads
                    ),
                );
                continue;
            }
            seen.insert((s.layers, s.d_model, s.heads), field.clone());
            if let Some(first) = names.get(&s.name) {
                self.error(
                    format!("{field}.name"),
                    format!("duplicate size name `{}`: same as {first}", s.name),
                );
            }
            names.insert(s.name.clone(), field.clone());
        }
        let parametrization = self.parametrization(f, &sizes);
        let mut sizes: Vec<ModelSize> = sizes.into_iter().map(|(_, s)| s).collect();
        let cfg = |s: &ModelSize| GptConfig {
            layers: s.layers,
            d_model: s.d_model,
            heads: s.heads,
            context,
            vocab,
            tie_embeddings,
            parametrization,
        };
        sizes.sort_by_key(|s| (param_counts(&cfg(s)).non_embedding, s.layers));
        Some(ModelSpec {
            context,
            tie_embeddings,
            parametrization,
            sizes,
        })
    }

    /// `model.parametrization` and `model.base_width`; under µP every size has one depth.
    fn parametrization(&mut self, f: &ModelFile, sizes: &[(String, ModelSize)]) -> Parametrization {
        if f.parametrization != Some(ParametrizationName::Mup) {
            if f.base_width.is_some() {
                self.error(
                    "model.base_width",
                    "only with `parametrization: mup` (the standard parametrisation has no base width)",
                );
            }
            return Parametrization::Standard;
        }
        let Some(Count(base_width)) = f.base_width else {
            self.error(
                "model.base_width",
                "missing: `parametrization: mup` scales every width from a base width (every multiplier is 1 there), e.g. the smallest d_model",
            );
            return Parametrization::Standard;
        };
        if base_width == 0 || base_width > MAX_D_MODEL {
            self.error(
                "model.base_width",
                format!("must be between 1 and {MAX_D_MODEL}, found {base_width}"),
            );
            return Parametrization::Standard;
        }
        if let Some((first_field, first)) = sizes.first() {
            for (field, s) in &sizes[1..] {
                if s.layers != first.layers {
                    self.error(
                        format!("{field}.layers"),
                        format!(
                            "{} layers, but {first_field} has {}: under `parametrization: mup` every size has one depth (the learning rate transfers across widths, not depths)",
                            s.layers, first.layers
                        ),
                    );
                }
            }
        }
        Parametrization::Mup { base_width }
    }

    /// Check one shape; `field` is where to report problems.
    pub(super) fn shape(
        &mut self,
        field: &str,
        layers: u64,
        d_model: u64,
        heads: u64,
    ) -> Option<ModelSize> {
        let before = self.error_count();
        if layers == 0 || layers > MAX_LAYERS {
            self.error(
                format!("{field}.layers"),
                format!("must be between 1 and {MAX_LAYERS}, found {layers}"),
            );
        }
        if d_model == 0 || d_model > MAX_D_MODEL {
            self.error(
                format!("{field}.d_model"),
                format!("must be between 1 and {MAX_D_MODEL}, found {d_model}"),
            );
        }
        if heads == 0 {
            self.error(format!("{field}.heads"), "must be at least 1, found 0");
        } else if d_model > 0 && !d_model.is_multiple_of(heads) {
            let near: Vec<String> = divisors_near(d_model, heads)
                .iter()
                .map(u64::to_string)
                .collect();
            self.error(
                format!("{field}.heads"),
                format!(
                    "d_model {d_model} is not divisible by heads {heads}; try heads {}",
                    near.join(" or ")
                ),
            );
        }
        (self.error_count() == before).then(|| ModelSize {
            layers,
            d_model,
            heads,
            name: format!("l{layers}-d{d_model}"),
        })
    }
}

/// Up to two divisors of `n` nearest to `near`, for "try heads …" hints.
fn divisors_near(n: u64, near: u64) -> Vec<u64> {
    let mut divisors: Vec<u64> = (1..=n.min(1024)).filter(|d| n.is_multiple_of(*d)).collect();
    divisors.sort_by_key(|d| (d.abs_diff(near), *d));
    divisors.truncate(2);
    divisors.sort();
    divisors
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::study::from_bytes;
    use crate::study::plan::plan;
    use crate::study::plan::tests::{BASE, keys};

    #[test]
    pub(super) fn divisor_hints_are_real_divisors() {
        assert_eq!(divisors_near(100, 3), vec![2, 4]);
        assert_eq!(divisors_near(64, 6), vec![4, 8]);
        for d in divisors_near(96, 7) {
            assert_eq!(96 % d, 0);
        }
    }

    /// `parametrization` is in a run's identity only under µP: standard runs keep the keys
    /// they had before µP existed, and µP runs of the same shapes get keys of their own.
    #[test]
    fn the_parametrization_joins_the_identity_only_under_mup() {
        let standard = from_bytes(BASE.as_bytes(), Path::new("keys.yaml")).unwrap();
        let runs = plan(&standard).unwrap();
        let json = serde_json::to_string(&runs[0].identity).unwrap();
        assert!(!json.contains("parametrization"), "{json}");
        let mup_text = BASE.replace(
            "  context: 64\n",
            "  context: 64\n  parametrization: mup\n  base_width: 32\n",
        );
        let mup = from_bytes(mup_text.as_bytes(), Path::new("keys.yaml")).unwrap();
        let mup_runs = plan(&mup).unwrap();
        let json = serde_json::to_string(&mup_runs[0].identity).unwrap();
        assert!(
            json.contains(r#""parametrization":{"kind":"mup","base_width":32}"#),
            "{json}"
        );
        assert_eq!(runs.len(), mup_runs.len());
        for (a, b) in runs.iter().zip(&mup_runs) {
            assert_eq!(a.name, b.name);
            assert_ne!(a.key, b.key);
        }
        let explicit = BASE.replace(
            "  context: 64\n",
            "  context: 64\n  parametrization: standard\n",
        );
        assert_eq!(keys(&explicit), keys(BASE));
    }
}
