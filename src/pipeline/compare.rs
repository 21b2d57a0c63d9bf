//! The comparison of a study's branched WSD runs with its points trained independently
//! (`train.compare`): both sets read from the store by the one reader, the independent set
//! fitted in memory with the study's own laws (nothing is written).

use super::Error;
use super::fitting::{Constraints, compute, study_rows};
use super::spend::spend;
use crate::fit::power::Form;
use crate::fit::suite::{FitReport, Row};
use crate::report::comparison::{Comparison, ParamPair, PointPair};
use crate::store::Store;
use crate::study::plan::plan;
use crate::study::{RunSpec, Schedule, Study, branches};

/// The comparison the study asks for, from what the store holds now (`specs`: the study's
/// planned runs); `None` without `train.compare`.
pub fn compare(
    study: &Study,
    specs: &[RunSpec],
    store: &Store,
    fits: &FitReport,
) -> Result<Option<Comparison>, Error> {
    let Some(other) = branches::comparison(study) else {
        return Ok(None);
    };
    let schedule = match other.training().map(|t| t.train.schedule) {
        Some(Schedule::Cosine { .. }) => "cosine",
        Some(Schedule::Wsd { .. }) => "wsd",
        _ => "constant",
    };
    let own = study_rows(study, store)?;
    let theirs = study_rows(&other, store)?;
    let other_fits = compute(&other, &theirs, Constraints::default());
    let at = |r: &Row| (r.params_total.to_bits(), r.tokens.to_bits());
    let points: Vec<PointPair> = own
        .rows
        .iter()
        .filter_map(|b| {
            let i = theirs.rows.iter().find(|i| at(i) == at(b))?;
            Some(PointPair {
                name: b.name.clone(),
                branched: b.loss,
                independent: i.loss,
            })
        })
        .collect();
    let other_specs = plan(&other).map_err(|e| Error::Input(e.to_string()))?;
    Ok(Some(Comparison {
        schedule: schedule.into(),
        missing: own.rows.len() - points.len(),
        params: params(fits, &other_fits),
        points,
        branched_cpu_seconds: spend(store, specs).cpu_seconds,
        independent_cpu_seconds: spend(store, &other_specs).cpu_seconds,
    }))
}

/// Every parameter of the laws fitted both ways.
fn params(b: &FitReport, i: &FitReport) -> Vec<ParamPair> {
    let mut out = Vec::new();
    let mut pair =
        |law: &str, param: &str, v: (f64, f64), ci: (Option<[f64; 2]>, Option<[f64; 2]>)| {
            out.push(ParamPair {
                law: law.into(),
                param: param.into(),
                branched: v.0,
                branched_ci: ci.0,
                independent: v.1,
                independent_ci: ci.1,
            })
        };
    if let (Some(b), Some(i)) = (&b.chinchilla, &i.chinchilla) {
        let (bc, ic) = (b.ci.as_ref(), i.ci.as_ref());
        let law = "L(N, D)";
        pair(law, "E", (b.e, i.e), (bc.map(|c| c.e), ic.map(|c| c.e)));
        pair(law, "A", (b.a, i.a), (bc.map(|c| c.a), ic.map(|c| c.a)));
        pair(law, "B", (b.b, i.b), (bc.map(|c| c.b), ic.map(|c| c.b)));
        pair(
            law,
            "α",
            (b.alpha, i.alpha),
            (bc.map(|c| c.alpha), ic.map(|c| c.alpha)),
        );
        pair(
            law,
            "β",
            (b.beta, i.beta),
            (bc.map(|c| c.beta), ic.map(|c| c.beta)),
        );
    }
    for bp in &b.power {
        let Some(ip) = i
            .power
            .iter()
            .find(|p| p.x == bp.x && p.params == bp.params && p.fit.form == bp.fit.form)
        else {
            continue;
        };
        let law = format!("L({})", format!("{:?}", bp.x).to_lowercase());
        let (bc, ic) = (bp.ci.as_ref(), ip.ci.as_ref());
        let (bf, i_f) = (&bp.fit, &ip.fit);
        // The offset law has E, A, α; the pure one A, α; the log law a + b·ln x.
        let names = match bf.form {
            Form::Offset => ["E", "A", "α"],
            Form::Pure => ["", "A", "α"],
            Form::Log => ["a", "b", ""],
        };
        let values = [
            ((bf.e, i_f.e), (bc.map(|c| c.e), ic.map(|c| c.e))),
            ((bf.a, i_f.a), (bc.map(|c| c.a), ic.map(|c| c.a))),
            (
                (bf.alpha, i_f.alpha),
                (bc.map(|c| c.alpha), ic.map(|c| c.alpha)),
            ),
        ];
        for (name, (v, ci)) in names.iter().zip(values) {
            if !name.is_empty() {
                pair(&law, name, v, ci);
            }
        }
    }
    out
}
