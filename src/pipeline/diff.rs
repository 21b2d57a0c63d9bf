//! Comparing two versions of a study number by number: which runs were added, removed or
//! changed (and in which identity field), how each shared run's loss moved, and for every
//! fitted number the two values, their intervals and whether the intervals overlap — the
//! allocation and the warnings included.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::fit::suite::FitReport;
use crate::record::read::Entry;
use crate::store::{EntryState, Store};
use crate::study::Study;

/// One side of a comparison: its records by run name, and its fits.
pub struct Side {
    pub label: String,
    pub records: BTreeMap<String, Entry>,
    pub fits: Option<FitReport>,
    /// The study's `checks:` on these results (none for a results folder).
    pub checks: Vec<CheckOutcome>,
}

/// One `checks:` expression and how it came out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckOutcome {
    pub expression: String,
    pub passed: bool,
}

impl Side {
    /// The study's records in `store` (its planned runs, and the final run and baseline its
    /// fits plan) and its `fits.json`.
    pub fn of_study(label: String, study: &Study, store: &Store) -> Result<Side, super::Error> {
        let mut specs = super::transfer::all_specs(study, store)?;
        let fits = super::fitting::recorded(study, store);
        if let Some(f) = &fits
            && let Some(fp) = super::chapter::plan_final(study, f)?
        {
            specs.extend(fp.specs());
        }
        let mut records = BTreeMap::new();
        for spec in &specs {
            if let EntryState::Done(e) | EntryState::Failed(e) = store.inspect(spec) {
                records.insert(spec.name.clone(), *e);
            }
        }
        let checks = match &fits {
            Some(f) if !study.checks.is_empty() => {
                super::chapter::evaluate_checks(study, store, f)?
                    .into_iter()
                    .map(|c| CheckOutcome {
                        expression: c.expression,
                        passed: c.passed,
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        Ok(Side {
            label,
            records,
            fits,
            checks,
        })
    }

    /// Every readable record in a results folder, and its one study's `fits.json`.
    pub fn of_folder(label: String, store: &Store) -> Result<Side, super::Error> {
        let mut records = BTreeMap::new();
        for (_, entry) in store.entries() {
            if let Ok(e) = entry {
                records.insert(e.result.name.clone(), e);
            }
        }
        let studies: Vec<_> = std::fs::read_dir(store.root().join("studies"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|d| d.path().join("fits.json").is_file())
            .collect();
        let fits = match studies.as_slice() {
            [] => None,
            [one] => std::fs::read_to_string(one.path().join("fits.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok()),
            _ => {
                return Err(super::Error::Input(format!(
                    "{}: holds the fits of {} studies; name the study file instead",
                    store.root().display(),
                    studies.len()
                )));
            }
        };
        if records.is_empty() && fits.is_none() {
            return Err(super::Error::Input(format!(
                "{}: no run records and no fits.json: not a results folder",
                store.root().display()
            )));
        }
        Ok(Side {
            label,
            records,
            fits,
            checks: Vec::new(),
        })
    }
}

/// How a run differs between the two sides.
#[derive(Debug, Clone, Serialize)]
pub struct RunChange {
    pub name: String,
    /// `added`, `removed`, `changed` (another key) or `same`.
    pub change: &'static str,
    /// The identity fields that differ (for `changed`).
    pub fields: Vec<String>,
    pub loss_a: Option<f64>,
    pub loss_b: Option<f64>,
}

/// One fitted number on both sides.
#[derive(Debug, Clone, Serialize)]
pub struct NumberChange {
    pub name: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub a_interval: Option<[f64; 2]>,
    pub b_interval: Option<[f64; 2]>,
    /// Whether the two intervals overlap (None without both).
    pub overlap: Option<bool>,
}

/// The comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub a: String,
    pub b: String,
    pub runs: Vec<RunChange>,
    pub numbers: Vec<NumberChange>,
    pub warnings_a: Vec<String>,
    pub warnings_b: Vec<String>,
    pub checks_a: Vec<CheckOutcome>,
    pub checks_b: Vec<CheckOutcome>,
    /// Whether either side's runs are the mock executor's.
    pub mock: bool,
}

impl Diff {
    pub fn count(&self, change: &str) -> usize {
        self.runs.iter().filter(|r| r.change == change).count()
    }
}

/// Compare two sides.
pub fn diff(a: &Side, b: &Side) -> Diff {
    let mut names: Vec<&String> = a.records.keys().chain(b.records.keys()).collect();
    names.sort();
    names.dedup();
    let runs = names
        .into_iter()
        .map(|name| {
            let (x, y) = (a.records.get(name), b.records.get(name));
            let loss = |e: Option<&Entry>| e.and_then(|e| e.result.val_loss);
            let (change, fields) = match (x, y) {
                (Some(_), None) => ("removed", Vec::new()),
                (None, Some(_)) => ("added", Vec::new()),
                (Some(x), Some(y)) if x.result.key == y.result.key => ("same", Vec::new()),
                (Some(x), Some(y)) => (
                    "changed",
                    identity_fields(&x.result.spec.identity, &y.result.spec.identity),
                ),
                (None, None) => unreachable!("a name comes from one side"),
            };
            RunChange {
                name: name.clone(),
                change,
                fields,
                loss_a: loss(x),
                loss_b: loss(y),
            }
        })
        .collect();
    let warnings = |s: &Side| {
        s.fits
            .as_ref()
            .map(|f| f.warning_codes.clone())
            .unwrap_or_default()
    };
    Diff {
        a: a.label.clone(),
        b: b.label.clone(),
        runs,
        numbers: numbers(a.fits.as_ref(), b.fits.as_ref()),
        warnings_a: warnings(a),
        warnings_b: warnings(b),
        checks_a: a.checks.clone(),
        checks_b: b.checks.clone(),
        mock: a
            .records
            .values()
            .chain(b.records.values())
            .any(|e| e.result.spec.is_mock()),
    }
}

/// The identity fields (and, for `train`, its keys) that differ.
pub(crate) fn identity_fields<T: Serialize>(x: &T, y: &T) -> Vec<String> {
    let (x, y) = (
        serde_json::to_value(x).unwrap_or(Value::Null),
        serde_json::to_value(y).unwrap_or(Value::Null),
    );
    let mut out = Vec::new();
    if let (Value::Object(x), Value::Object(y)) = (&x, &y) {
        for (k, v) in y {
            match (x.get(k), v) {
                (Some(Value::Object(a)), Value::Object(b)) => {
                    for (kk, vv) in b {
                        if a.get(kk) != Some(vv) {
                            out.push(format!("{k}.{kk}"));
                        }
                    }
                }
                (Some(a), b) if a == b => {}
                _ => out.push(k.clone()),
            }
        }
    }
    out
}

/// A value and its interval.
type Valued = Option<(f64, Option<[f64; 2]>)>;

/// Every headline number of the fits on both sides.
fn numbers(a: Option<&FitReport>, b: Option<&FitReport>) -> Vec<NumberChange> {
    let mut out: Vec<NumberChange> = Vec::new();
    let mut add = |name: String, pick: &dyn Fn(&FitReport) -> Valued| {
        let (x, y) = (a.and_then(pick), b.and_then(pick));
        if x.is_none() && y.is_none() {
            return;
        }
        let (ai, bi) = (x.and_then(|v| v.1), y.and_then(|v| v.1));
        out.push(NumberChange {
            name,
            a: x.map(|v| v.0),
            b: y.map(|v| v.0),
            a_interval: ai,
            b_interval: bi,
            overlap: ai.zip(bi).map(|(p, q)| p[0] <= q[1] && q[0] <= p[1]),
        });
    };
    type Pick = fn(&crate::fit::report::ChinchillaReport) -> (f64, Option<[f64; 2]>);
    let laws: [(&str, Pick); 5] = [
        ("E", |c| (c.e, c.ci.as_ref().map(|i| i.e))),
        ("A", |c| (c.a, c.ci.as_ref().map(|i| i.a))),
        ("B", |c| (c.b, c.ci.as_ref().map(|i| i.b))),
        ("α", |c| (c.alpha, c.ci.as_ref().map(|i| i.alpha))),
        ("β", |c| (c.beta, c.ci.as_ref().map(|i| i.beta))),
    ];
    for (name, pick) in laws {
        add(format!("chinchilla {name}"), &|f| {
            f.chinchilla.as_ref().map(pick)
        });
    }
    let budgets: Vec<f64> = a
        .iter()
        .chain(b.iter())
        .flat_map(|f| f.allocation.iter().map(|x| x.compute))
        .fold(Vec::new(), |mut v, c| {
            if !v.contains(&c) {
                v.push(c);
            }
            v
        });
    for c in budgets {
        let at = move |f: &FitReport| f.allocation.iter().find(|x| x.compute == c).cloned();
        add(format!("N_opt at C {c:.3e}"), &|f| {
            at(f).map(|x| (x.n_opt, x.ci.map(|i| i[0])))
        });
        add(format!("D_opt at C {c:.3e}"), &|f| {
            at(f).map(|x| (x.d_opt, x.ci.map(|i| i[1])))
        });
        add(format!("loss at C {c:.3e}"), &|f| {
            at(f).map(|x| (x.loss, x.ci.map(|i| i[3])))
        });
    }
    add("hold-out max relative error".into(), &|f| {
        f.holdout.as_ref().map(|h| (h.rel_error_max, None))
    });
    out
}
