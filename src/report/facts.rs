//! The `facts_recall` chart: which facts each size has learned. Recall@1 of a fact's value
//! after its key, by the fact's frequency decile (most frequent first), one line per size at
//! its longest training (its best learning rate), the final run's beside them, against the
//! ceiling the language's value noise leaves.

use super::Input;
use super::plot::{Mark, Panel, Series, colour};
use crate::data::facts::VALUE_NOISE;
use crate::study::metrics::{FACT_DECILES, decile_name};

/// The recall of each decile a run recorded, as (decile, recall) points.
fn by_decile(metrics: &std::collections::BTreeMap<String, f64>) -> Vec<(f64, f64)> {
    (0..FACT_DECILES)
        .filter_map(|d| Some(((d + 1) as f64, *metrics.get(&decile_name(d))?)))
        .collect()
}

/// The chart: one panel.
pub fn chart(input: &Input) -> Result<Vec<Panel>, String> {
    let mut sizes: Vec<(u64, &str)> = Vec::new();
    for r in &input.runs {
        if r.selected && !by_decile(&r.metrics).is_empty() && !sizes.iter().any(|s| s.1 == r.size) {
            sizes.push((r.params_total, r.size.as_str()));
        }
    }
    if sizes.is_empty() {
        return Err("needs runs that record the facts recall (`metrics: [facts]`)".into());
    }
    sizes.sort();
    let mut panel = Panel::new(
        "Facts recalled, by frequency",
        "frequency decile of the fact (1 = the most frequent tenth)",
        "recall@1 of its value",
    );
    panel.x_log = false;
    for (i, (_, size)) in sizes.iter().enumerate() {
        // The size's longest run among the ones the fits use.
        let Some(run) = input
            .runs
            .iter()
            .filter(|r| r.selected && r.size == *size && !by_decile(&r.metrics).is_empty())
            .max_by_key(|r| r.tokens)
        else {
            continue;
        };
        panel.series.push(Series::new(
            Some(format!(
                "{} ({} tokens)",
                run.size,
                super::format::sci(run.tokens as f64)
            )),
            Mark::Line,
            colour(i),
            by_decile(&run.metrics),
        ));
    }
    if let Some(f) = &input.final_run {
        let points = by_decile(&f.run.metrics);
        if !points.is_empty() {
            panel.series.push(Series::new(
                Some(format!("final run {}", f.run.name)),
                Mark::Dashed,
                colour(sizes.len()),
                points,
            ));
        }
    }
    if let Some(v) = input.data.vocab.filter(|v| *v > 1) {
        let ceiling = 1.0 - VALUE_NOISE + VALUE_NOISE / (v - 1) as f64;
        panel.h_line = Some((ceiling, format!("ceiling {ceiling:.3} (value noise)")));
    }
    Ok(vec![panel])
}
