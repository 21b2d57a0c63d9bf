//! Approach 1 of Hoffmann et al. 2022 (§3.1): the lower envelope of every learning curve
//! over compute, bucketed per quarter decade; N ∝ Cᵃ and D ∝ Cᵇ over the buckets' best runs.

use serde::{Deserialize, Serialize};

use super::options::ParamsConvention;
use super::suite::CurveRow;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FrontierPoint {
    pub compute: f64,
    pub n: f64,
    pub d: f64,
    pub loss: f64,
}

/// Approach 1 (Hoffmann et al. 2022, §3.1): the lower envelope of all learning curves over
/// compute; per log-spaced compute bucket its best (N, D); N ∝ Cᵃ and D ∝ Cᵇ.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FrontierReport {
    pub a: f64,
    pub b: f64,
    pub points: Vec<FrontierPoint>,
}

/// Buckets per decade of compute.
const FRONTIER_BUCKETS_PER_DECADE: f64 = 4.0;

pub fn frontier(curves: &[CurveRow], params: ParamsConvention) -> Option<FrontierReport> {
    let mut pts: Vec<&CurveRow> = curves
        .iter()
        .filter(|c| c.flops > 0.0 && c.loss.is_finite())
        .collect();
    pts.sort_by(|a, b| a.flops.total_cmp(&b.flops));
    // Lower envelope: points that beat every point with less compute.
    let mut envelope = Vec::new();
    let mut best = f64::INFINITY;
    for p in pts {
        if p.loss < best {
            best = p.loss;
            envelope.push(p);
        }
    }
    let mut buckets: Vec<(i64, &CurveRow)> = Vec::new();
    for p in envelope {
        let bucket = (p.flops.log10() * FRONTIER_BUCKETS_PER_DECADE).floor() as i64;
        match buckets.last_mut() {
            // The envelope falls with compute, so a bucket's last point is its best.
            Some((b, q)) if *b == bucket => *q = p,
            _ => buckets.push((bucket, p)),
        }
    }
    let n_of = |c: &CurveRow| match params {
        ParamsConvention::Total => c.params_total,
        ParamsConvention::NonEmbedding => c.params_non_embedding,
    };
    let ln_c: Vec<f64> = buckets.iter().map(|(_, p)| p.flops.ln()).collect();
    let ln_n: Vec<f64> = buckets.iter().map(|(_, p)| n_of(p).ln()).collect();
    let ln_d: Vec<f64> = buckets.iter().map(|(_, p)| p.tokens.ln()).collect();
    let (_, a) = super::linear::line(&ln_c, &ln_n)?;
    let (_, b) = super::linear::line(&ln_c, &ln_d)?;
    Some(FrontierReport {
        a,
        b,
        points: buckets
            .iter()
            .map(|(_, p)| FrontierPoint {
                compute: p.flops,
                n: n_of(p),
                d: p.tokens,
                loss: p.loss,
            })
            .collect(),
    })
}
