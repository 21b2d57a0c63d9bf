//! Learning-rate transfer in a study's pipeline: whether the sweep has decided the
//! transferred runs yet, from the swept sizes' records in the store
//! ([`crate::study::transfer`]), and the study's runs with them.

use crate::fit::hyper::{TRANSFER_MARGIN, TransferCheck, TransferPoint, TransferReport};
use crate::record::RunStatus;
use crate::store::{EntryState, Store};
use crate::study::plan::plan;
use crate::study::transfer::{self, Decided, Decision, Deferred, SweptRun};
use crate::study::{RunSpec, Study};

use super::Error;

/// Where a study's transferred runs stand.
#[derive(Debug, Clone)]
pub enum Transfer {
    /// The study transfers no learning rate.
    None,
    /// Decided: the runs and why each has its learning rate.
    Ready {
        specs: Vec<RunSpec>,
        decisions: Vec<Decision>,
    },
    /// The sweep has not finished: these points wait for it (`missing` swept runs).
    Waiting {
        deferred: Vec<Deferred>,
        missing: usize,
    },
    /// The sweep finished but cannot decide: why.
    Impossible {
        deferred: Vec<Deferred>,
        why: String,
    },
}

/// Decide the transferred runs of `study` from the records of its planned runs (`planned`,
/// from [`plan`]) in `store`.
pub fn resolve(study: &Study, store: &Store, planned: &[RunSpec]) -> Result<Transfer, Error> {
    let Some(t) = study.training() else {
        return Ok(Transfer::None);
    };
    let Some(x) = &t.transfer else {
        return Ok(Transfer::None);
    };
    let params = super::fitting::params_convention(study);
    let index_of = |spec: &RunSpec| size_index(t, spec);
    let mut runs = Vec::new();
    let mut missing = 0;
    for spec in planned {
        let Some(index) = index_of(spec).filter(|i| x.swept.contains(i)) else {
            continue;
        };
        match store.inspect(spec) {
            EntryState::Done(e) | EntryState::Failed(e) => runs.push(SweptRun {
                name: spec.name.clone(),
                index,
                tokens: spec.tokens(),
                n: spec.n(params),
                lr: spec.identity.train.lr,
                batch: spec.identity.train.batch,
                loss: e
                    .result
                    .val_loss
                    .filter(|_| e.result.status == crate::record::RunStatus::Ok),
            }),
            EntryState::Missing | EntryState::Corrupt(_) => missing += 1,
        }
    }
    let deferred = transfer::deferred(t);
    Ok(
        match transfer::decide(t, &runs, missing, params, study.seed) {
            Decided::Ready(decisions) => {
                let data = t.data.identity().map_err(|e| Error::Input(e.to_string()))?;
                Transfer::Ready {
                    specs: transfer::specs(study.seed, t, &data, &decisions),
                    decisions,
                }
            }
            Decided::Waiting(missing) => Transfer::Waiting { deferred, missing },
            Decided::Impossible(why) => Transfer::Impossible { deferred, why },
        },
    )
}

/// The study's runs: the planned ones and, once the sweep has decided them, the transferred
/// ones (a transferred run equal to a swept one — a checked size at a swept value — once).
pub fn all_specs(study: &Study, store: &Store) -> Result<Vec<RunSpec>, Error> {
    Ok(planned_and_decided(study, store)?.0)
}

/// The study's runs ([`all_specs`]) with the report of the transfer that decided them: one
/// decision for both.
pub fn planned_and_decided(
    study: &Study,
    store: &Store,
) -> Result<(Vec<RunSpec>, Option<TransferReport>), Error> {
    let mut specs = plan(study).map_err(|e| Error::Input(e.to_string()))?;
    let transfer = resolve(study, store, &specs)?;
    let report = report(study, store, &specs, &transfer);
    if let Transfer::Ready { specs: more, .. } = transfer {
        append(&mut specs, more);
    }
    Ok((specs, report))
}

/// The study size a run is of, by its shape (never by display name).
fn size_index(t: &crate::study::TrainingPlan, spec: &RunSpec) -> Option<usize> {
    let c = spec.config();
    t.model
        .sizes
        .iter()
        .position(|s| (s.layers, s.d_model, s.heads) == (c.layers, c.d_model, c.heads))
}

/// Add `more` to `specs`, skipping keys already there.
pub fn append(specs: &mut Vec<RunSpec>, more: Vec<RunSpec>) {
    for spec in more {
        if !specs.iter().any(|s| s.key == spec.key) {
            specs.push(spec);
        }
    }
}

/// One line on the points still waiting for the sweep (`None` when nothing waits): how
/// many, which, and by which rule they will be decided.
pub fn waiting_line(study: &Study, transfer: &Transfer) -> Option<String> {
    let (deferred, why) = match transfer {
        Transfer::Waiting { deferred, missing } => {
            (deferred, format!("{missing} swept run(s) still to train"))
        }
        Transfer::Impossible { deferred, why } => (deferred, format!("not decidable: {why}")),
        Transfer::None | Transfer::Ready { .. } => return None,
    };
    let t = study.training()?;
    let x = t.transfer.as_ref()?;
    let swept: Vec<&str> = x
        .swept
        .iter()
        .map(|&i| t.model.sizes[i].name.as_str())
        .collect();
    let rule = match x.rule {
        crate::study::TransferRule::Mup => "mup",
        crate::study::TransferRule::Law => "law",
    };
    let points: Vec<&str> = deferred.iter().map(|d| d.point.as_str()).collect();
    Some(format!(
        "{} run(s): lr decided after the sweep (`train.lr_transfer`, rule {rule}, swept at {}; {why}): {}",
        deferred.len(),
        swept.join(", "),
        points.join(", ")
    ))
}

/// [`resolve`] without a store to read (nothing has trained): every point waits.
pub fn unresolved(study: &Study, planned: &[RunSpec]) -> Transfer {
    match study.training() {
        Some(t) if t.transfer.is_some() => Transfer::Waiting {
            deferred: transfer::deferred(t),
            missing: planned
                .iter()
                .filter(|s| {
                    size_index(t, s)
                        .is_some_and(|i| t.transfer.as_ref().is_some_and(|x| x.swept.contains(&i)))
                })
                .count(),
        },
        _ => Transfer::None,
    }
}

/// The finished run's final loss (`None`: no record, diverged or failed).
fn loss(store: &Store, spec: &RunSpec) -> Option<f64> {
    match store.inspect(spec) {
        EntryState::Done(e) if e.result.status == RunStatus::Ok => e.result.val_loss,
        _ => None,
    }
}

/// The transfer as the fits report it: every transferred point's learning rate and loss,
/// and for a `check` size the best of its own sweep (`None` until the sweep has decided).
fn report(
    study: &Study,
    store: &Store,
    planned: &[RunSpec],
    transfer: &Transfer,
) -> Option<TransferReport> {
    let t = study.training()?;
    let x = t.transfer.as_ref()?;
    let Transfer::Ready { specs, decisions } = transfer else {
        return None;
    };
    let points = decisions
        .iter()
        .zip(specs)
        .map(|(d, spec)| {
            let got = loss(store, spec);
            let check = d.checked.then(|| {
                planned
                    .iter()
                    .filter(|s| size_index(t, s) == Some(d.index) && s.tokens() == d.tokens)
                    .filter_map(|s| Some((s.identity.train.lr, loss(store, s)?)))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
            });
            let check = match (check.flatten(), got) {
                (Some((best_lr, best_loss)), Some(l)) => Some(TransferCheck {
                    best_lr,
                    best_loss,
                    excess: l / best_loss - 1.0,
                }),
                _ => None,
            };
            TransferPoint {
                point: d.point.clone(),
                size: d.size.clone(),
                n: d.n,
                d: d.tokens as f64,
                lr: d.lr,
                lr_exact: d.lr_exact,
                batch: d.batch,
                loss: got,
                outside_sweep: d.outside_sweep,
                check,
            }
        })
        .collect();
    Some(TransferReport {
        rule: match x.rule {
            crate::study::TransferRule::Mup => "mup".into(),
            crate::study::TransferRule::Law => "law".into(),
        },
        swept_sizes: x
            .swept
            .iter()
            .map(|&i| t.model.sizes[i].name.clone())
            .collect(),
        swept_range: [
            t.learning_rates.first().copied().unwrap_or(f64::NAN),
            t.learning_rates.last().copied().unwrap_or(f64::NAN),
        ],
        points,
        margin: TRANSFER_MARGIN,
    })
}
