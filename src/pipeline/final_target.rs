//! Which optimum the final run trains at, or why it trains at none.
//!
//! The final run follows the law the data support: the pinned-E law when the study pins
//! the floor (`E:` of its chinchilla fit), else the free-E law unless it is
//! unidentified — a parameter at the edge of its search (`param_at_bound`) or a floor E
//! below the data's known entropy (`e_below_entropy`) — in which case the reduced form with
//! the lowest AIC among those that are themselves sound (E not below the known floor,
//! exponents inside the search) takes its place. Its compute stays within ±10 % of the
//! budget in the fit's 6·N·D convention: when the buildable shape's N is far from N_opt,
//! D is re-derived from the budget. And an optimum far outside what the grid measured —
//! more than 10× beyond its tokens-per-parameter range, or N_opt under a tenth of its
//! smallest size — is not trained at all: the law would be extrapolated past anything it
//! saw, and such runs can cost days of training far over the budget.

use crate::fit::chinchilla::{Law, allocate};
use crate::fit::constrained::{LimitedOptimum, for_total_flops};
use crate::fit::diagnose::Warning;
use crate::fit::suite::FitReport;
use crate::study::{LawKind, ParamsConvention, Study};

/// How far outside the grid's tokens-per-parameter range (a factor) the optimum may lie.
pub const MAX_RATIO_OUTSIDE: f64 = 10.0;
/// N_opt below this fraction of the smallest grid size is not trained.
pub const MIN_SIZE_FRACTION: f64 = 0.1;

/// The optimum the final run is planned from.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub n_opt: f64,
    pub d_opt: f64,
    pub params: ParamsConvention,
    /// `free_e`, `pinned_e`, `fixed_e`, `zero_e` or `isoflop`.
    pub form: String,
    /// The law that placed it (a Chinchilla form; none for IsoFLOP).
    pub law: Option<Law>,
    /// With `final.law: auto`: why this law, in words.
    pub chosen_by: Option<String>,
    /// With `final:` limits (inference tokens, a parameter cap, a memory limit): the
    /// optimum under them, which N and D are.
    pub limits: Option<Box<LimitedOptimum>>,
}

/// What the fits say about the final run.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// No `final:`, or no law to plan it from.
    Nothing,
    Train(Target),
    /// Not trained; why, in one line.
    Skip(String),
}

/// The decision for `study` from its fits.
pub fn decide(study: &Study, fits: &FitReport) -> Decision {
    let Some(spec) = study.final_run else {
        return Decision::Nothing;
    };
    let target = match spec.law {
        LawKind::Isoflop => {
            let Some(iso) = &fits.isoflop else {
                return Decision::Nothing;
            };
            let ln_c = spec.budget.ln();
            let params = study
                .fits
                .iter()
                .find_map(|f| match f {
                    crate::study::FitSpec::Isoflop { params, .. } => Some(*params),
                    _ => None,
                })
                .unwrap_or(ParamsConvention::Total);
            Target {
                n_opt: (iso.a_intercept + iso.a * ln_c).exp(),
                d_opt: (iso.b_intercept + iso.b * ln_c).exp(),
                params,
                form: "isoflop".into(),
                law: None,
                limits: None,
                chosen_by: None,
            }
        }
        LawKind::Auto => match auto_target(fits, spec.budget) {
            Ok(t) if spec.limited() => match limited(t, &spec, fits) {
                Ok(t) => t,
                Err(why) => return Decision::Skip(why),
            },
            Ok(t) => t,
            Err(why) => return why.map_or(Decision::Nothing, Decision::Skip),
        },
        _ => match chinchilla_target(fits, spec.budget) {
            Ok(t) if spec.limited() => match limited(t, &spec, fits) {
                Ok(t) => t,
                Err(why) => return Decision::Skip(why),
            },
            Ok(t) => t,
            Err(why) => return why.map_or(Decision::Nothing, Decision::Skip),
        },
    };
    match outside_grid(study, &target) {
        Some(why) => Decision::Skip(why),
        None => Decision::Train(target),
    }
}

/// The free-E law's optimum, or the best sound reduced law's when the free one is
/// unidentified; `Err(Some(why))` when no law is sound, `Err(None)` without a law.
fn chinchilla_target(fits: &FitReport, budget: f64) -> Result<Target, Option<String>> {
    let Some(c) = &fits.chinchilla else {
        return Err(None);
    };
    let free_sound = free_sound(fits);
    let target = |law: &Law, form: &str| {
        let a = allocate(law, budget);
        Target {
            n_opt: a.n_opt,
            d_opt: a.d_opt,
            params: c.params,
            form: form.into(),
            law: Some(*law),
            limits: None,
            chosen_by: None,
        }
    };
    if let Some(p) = &c.pinned {
        return Ok(match p.allocation.iter().find(|a| a.compute == budget) {
            Some(a) => Target {
                n_opt: a.n_opt,
                d_opt: a.d_opt,
                params: c.params,
                form: "pinned_e".into(),
                law: Some(p.law),
                limits: None,
                chosen_by: None,
            },
            None => target(&p.law, "pinned_e"),
        });
    }
    if free_sound {
        // The allocation fits.json reports (the same numbers, computed once).
        return Ok(match fits.allocation.iter().find(|a| a.compute == budget) {
            Some(a) => Target {
                n_opt: a.n_opt,
                d_opt: a.d_opt,
                params: c.params,
                form: "free_e".into(),
                law: Some(c.law()),
                limits: None,
                chosen_by: None,
            },
            None => target(&c.law(), "free_e"),
        });
    }
    c.reduced
        .iter()
        .filter(|r| r.form != "free_e" && sound(fits, &r.law))
        .min_by(|a, b| a.aic.total_cmp(&b.aic))
        .map(|r| target(&r.law, &r.form))
        .ok_or_else(|| {
            Some(
                "the free-E law is unidentified (a parameter at its bound, or E below the \
                 data's entropy) and no reduced law is sound: no optimum to train"
                    .to_string(),
            )
        })
}

/// `final.law: auto`: among the laws the fits hold — the Chinchilla forms the data support
/// (the free-E law when sound, E pinned, the sound reduced forms) and the over-training law —
/// the one with the lowest mean rollout error; without the audit, the lowest worst hold-out
/// error; without either, the Chinchilla choice ([`chinchilla_target`]).
fn auto_target(fits: &FitReport, budget: f64) -> Result<Target, Option<String>> {
    let base = chinchilla_target(fits, budget)?;
    let Some(c) = &fits.chinchilla else {
        return Ok(base);
    };
    let candidate = |form: &str| -> Option<Law> {
        match form {
            f if f == base.form => base.law,
            "pinned_e" => c.pinned.as_ref().map(|p| p.law),
            "overtrain" => fits.overtrain.as_ref().map(|o| o.chinchilla_form),
            "free_e" => free_sound(fits).then(|| c.law()),
            f => c
                .reduced
                .iter()
                .find(|r| r.form == f && sound(fits, &r.law))
                .map(|r| r.law),
        }
    };
    let pick = |form: &str, why: String| -> Option<Target> {
        let law = candidate(form)?;
        let a = allocate(&law, budget);
        Some(Target {
            n_opt: a.n_opt,
            d_opt: a.d_opt,
            params: c.params,
            form: form.into(),
            law: Some(law),
            limits: None,
            chosen_by: Some(why),
        })
    };
    if let Some(r) = &fits.rollout {
        let chosen = r.laws.iter().find_map(|l| {
            pick(
                &l.form,
                format!(
                    "the lowest mean rollout error among the laws the data support ({:.2} %)",
                    100.0 * l.mean_error
                ),
            )
        });
        if let Some(t) = chosen {
            return Ok(t);
        }
    }
    let mut holdouts: Vec<(&str, f64)> = Vec::new();
    if let Some(h) = &fits.holdout {
        holdouts.push((base.form.as_str(), h.rel_error_max));
    }
    if let Some(h) = c.pinned.as_ref().and_then(|p| p.holdout.as_ref()) {
        holdouts.push(("pinned_e", h.rel_error_max));
    }
    if let Some(h) = fits.overtrain.as_ref().and_then(|o| o.holdout.as_ref()) {
        holdouts.push(("overtrain", h.rel_error_max));
    }
    holdouts.sort_by(|a, b| a.1.total_cmp(&b.1));
    let chosen = holdouts.iter().find_map(|(form, err)| {
        pick(
            form,
            format!(
                "the lowest worst hold-out error among the laws fitted ({:.2} %)",
                100.0 * err
            ),
        )
    });
    Ok(chosen.unwrap_or(Target {
        chosen_by: Some("no rollout audit or hold-out to compare laws by".into()),
        ..base
    }))
}

/// The free-E law is identified: no parameter at its bound, E not below the entropy.
fn free_sound(fits: &FitReport) -> bool {
    let flagged = |code: &str| {
        fits.warnings
            .iter()
            .any(|w| w.code == code && w.subject.starts_with("chinchilla"))
    };
    !flagged("param_at_bound") && !flagged("e_below_entropy")
}

/// A reduced law is sound: E not below the data's known floor, exponents inside the search.
fn sound(fits: &FitReport, law: &Law) -> bool {
    fits.entropy
        .map(|[h, _]| h)
        .is_none_or(|h| law.e >= h * (1.0 - 1e-9))
        && [law.alpha, law.beta]
            .iter()
            .all(|v| (0.01..3.0).contains(v))
}

/// The target moved to the optimum of the budget under `final:`'s limits, through the law
/// that placed it; `Err(why)` when no model meets them.
fn limited(t: Target, spec: &crate::study::FinalSpec, fits: &FitReport) -> Result<Target, String> {
    let Some(law) = t.law else {
        return Ok(t);
    };
    let limits = spec.limits(fits.cost.as_ref())?;
    let Some(o) = for_total_flops(&law, spec.budget, &limits) else {
        return Err(format!(
            "no model meets `final:`'s limits within {:.3e} FLOPs (the inference tokens leave \
             no training compute, or the parameter, memory or wall-time limit admits no model)",
            spec.budget
        ));
    };
    Ok(Target {
        n_opt: o.n,
        d_opt: o.d,
        limits: Some(Box::new(o)),
        ..t
    })
}

/// Why the optimum lies too far outside the grid to train, if it does.
fn outside_grid(study: &Study, t: &Target) -> Option<String> {
    let points = grid(study, t.params);
    if points.is_empty() || !(t.n_opt > 0.0 && t.d_opt > 0.0) {
        return None;
    }
    let ratios = points.iter().map(|(n, d)| d / n);
    let lo = ratios.clone().fold(f64::INFINITY, f64::min);
    let hi = ratios.fold(0.0, f64::max);
    let smallest = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let tpp = t.d_opt / t.n_opt;
    if tpp > hi * MAX_RATIO_OUTSIDE || tpp < lo / MAX_RATIO_OUTSIDE {
        return Some(format!(
            "the {} law puts the optimum at {tpp:.3e} tokens per parameter, more than \
             {MAX_RATIO_OUTSIDE}× outside the grid's {lo:.3}–{hi:.3}: a final run there would \
             test an extrapolation, not the law",
            t.form
        ));
    }
    if t.n_opt < smallest * MIN_SIZE_FRACTION {
        return Some(format!(
            "the {} law puts N_opt at {:.3e} parameters, under a tenth of the grid's smallest \
             size ({smallest:.3e})",
            t.form, t.n_opt
        ));
    }
    None
}

/// The planned grid's (N, D) in the fit's convention, the points whose learning rate is
/// transferred after the sweep included.
fn grid(study: &Study, params: ParamsConvention) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = crate::study::plan::plan(study)
        .map(|specs| {
            specs
                .iter()
                .map(|s| (s.n(params), s.tokens() as f64))
                .collect()
        })
        .unwrap_or_default();
    if let Some(t) = study.training() {
        let vocab = crate::data::DataSpec::vocab(&t.data);
        for d in crate::study::transfer::deferred(t) {
            let counts = crate::model::param_counts(&crate::study::plan::gpt_config(
                &t.model, d.index, vocab,
            ));
            let n = match params {
                ParamsConvention::Total => counts.total,
                ParamsConvention::NonEmbedding => counts.non_embedding,
            };
            out.push((n as f64, d.tokens as f64));
        }
    }
    out
}

/// The warnings for the chapter: a final run planned from a reduced law, or skipped.
pub fn warning(decision: &Decision) -> Option<Warning> {
    match decision {
        Decision::Skip(why) => Some(Warning::new(
            "final_skipped",
            "final",
            format!("the final run was not trained: {why}"),
            "add runs that bracket the optimum (larger token counts per parameter, or sizes \
             near N_opt), or lower `final.budget`",
        )),
        Decision::Train(t) if matches!(t.form.as_str(), "fixed_e" | "zero_e") => {
            Some(Warning::new(
                "final_from_reduced_law",
                "final",
                format!(
                    "the final run follows the {} law (N_opt {:.3e}, D_opt {:.3e}): the free-E law \
                 is unidentified",
                    if t.form == "fixed_e" {
                        "fixed-E"
                    } else {
                        "zero-E"
                    },
                    t.n_opt,
                    t.d_opt
                ),
                "read the prediction against the reduced law; widen the grid until the free-E law \
             is identified",
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::study::{from_bytes, load};

    fn repo(rel: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    fn published(name: &str) -> (Study, FitReport) {
        let study = load(&repo(&format!("reports/{name}.yaml"))).unwrap();
        let text =
            std::fs::read_to_string(repo(&format!("reports/{name}/studies/{name}/fits.json")))
                .unwrap();
        (study, serde_json::from_str(&text).unwrap())
    }

    /// The published studies' final runs are the ones their stores hold: the same keys.
    #[test]
    fn published_final_runs_keep_their_keys() {
        for name in ["quickstart", "reference"] {
            let (study, fits) = published(name);
            assert!(matches!(decide(&study, &fits), Decision::Train(ref t) if t.form == "free_e"));
            let fp = crate::pipeline::chapter::plan_final(&study, &fits)
                .unwrap()
                .unwrap();
            for spec in [&fp.run, &fp.baseline] {
                let dir = repo(&format!("reports/{name}/runs/{}", spec.dir_name()));
                assert!(
                    dir.is_dir(),
                    "{name}: {} is not the published run",
                    spec.dir_name()
                );
            }
            // Within ±10 % of the budget in the fit's 6·N·D convention.
            let c = 6.0 * fp.n(&fp.run) * fp.run.tokens() as f64;
            assert!((c / fp.budget - 1.0).abs() <= 0.10, "{name}: {c:e}");
        }
    }

    /// A free-E law whose E collapsed (the 60-run study of the bug report): its optimum at
    /// hundreds of millions of tokens per parameter is never trained, and when a reduced
    /// law is sound the final run follows that instead.
    #[test]
    fn a_collapsed_law_neither_plans_nor_trains_a_run_far_outside_the_grid() {
        let (study, mut fits) = published("reference");
        let c = fits.chinchilla.as_mut().unwrap();
        c.e = 3.7e-14;
        c.alpha = 0.02;
        c.beta = 0.004;
        fits.warnings.push(Warning::new(
            "param_at_bound",
            "chinchilla.E",
            "E = 0".into(),
            "",
        ));
        let reduced = c.reduced.clone();
        // No sound reduced law: skipped, with the reason.
        c.reduced.retain(|r| r.form == "free_e");
        match decide(&study, &fits) {
            Decision::Skip(why) => assert!(why.contains("no reduced law is sound"), "{why}"),
            other => panic!("{other:?}"),
        }
        // A reduced law whose optimum is far outside the grid: skipped too.
        let c = fits.chinchilla.as_mut().unwrap();
        c.reduced = reduced.clone();
        for r in &mut c.reduced {
            r.law.alpha = 0.9;
            r.law.beta = 0.02;
        }
        match decide(&study, &fits) {
            Decision::Skip(why) => assert!(why.contains("tokens per parameter"), "{why}"),
            other => panic!("{other:?}"),
        }
        // The published reduced laws are sound: the best of them by AIC is followed.
        fits.chinchilla.as_mut().unwrap().reduced = reduced;
        match decide(&study, &fits) {
            Decision::Train(t) => assert_ne!(t.form, "free_e"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_rounded_shape_re_derives_its_tokens_from_the_budget() {
        let text = "version: 1\nname: fin\nmodel:\n  context: 64\n  sizes:\n    - { layers: 2, d_model: 32, heads: 2 }\n    - { layers: 3, d_model: 96, heads: 4 }\ntokens: [1e5, 4e5]\nfinal: { budget: 1e13 }\n";
        let study = from_bytes(text.as_bytes(), Path::new("fin.yaml")).unwrap();
        let t = study.training().unwrap();
        let data = t.data.identity().unwrap();
        // N_opt of 72 parameters rounds up to the smallest buildable shape; D keeps 6·N·D
        // at the budget instead of the law's D.
        let fp = crate::study::final_run::final_plan(
            1,
            t,
            &data,
            1e13,
            72.0,
            4.6e10,
            ParamsConvention::Total,
            crate::study::final_run::HyperLaws::default(),
        )
        .unwrap();
        let c = 6.0 * fp.n(&fp.run) * fp.run.tokens() as f64;
        assert!((c / 1e13 - 1.0).abs() <= 0.10, "{c:e}");
    }
}
