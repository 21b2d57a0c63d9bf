//! Learning-rate schedules whose length follows the run's token budget: the decay ends exactly
//! at the last step, as Hoffmann et al. 2022 (§3, Figure A1) show a schedule longer than the
//! run overestimates the loss a run of that length would reach.

use crate::study::{Schedule, TrainSpec};

/// Learning rate for `step` (0-based) of `steps`, for an independent run (warmup a fraction
/// of its own steps).
pub fn lr_at(train: &TrainSpec, step: u64, steps: u64) -> f64 {
    LrPlan::independent(train, steps).at(step)
}

/// Steps of warmup for an independent run of `steps`: the `warmup` fraction of them.
pub fn warmup_steps(train: &TrainSpec, steps: u64) -> u64 {
    ((train.warmup * steps as f64).round() as u64).min(steps.saturating_sub(1))
}

/// A run's whole learning-rate schedule with its step counts fixed.
#[derive(Debug, Clone, Copy)]
pub struct LrPlan {
    train: TrainSpec,
    steps: u64,
    warmup: u64,
    /// WSD: the first step of the decay.
    decay_start: u64,
}

impl LrPlan {
    /// The schedule of a run of `steps` whose warmup is its own `warmup` fraction.
    pub fn independent(train: &TrainSpec, steps: u64) -> LrPlan {
        let warmup = warmup_steps(train, steps);
        LrPlan::with_warmup(train, steps, warmup)
    }

    /// The schedule of a run of `steps` with `warmup` steps of warmup (a branch's warmup is
    /// its trunk's).
    pub fn with_warmup(train: &TrainSpec, steps: u64, warmup: u64) -> LrPlan {
        let decay_start = match train.schedule {
            Schedule::Wsd { decay, .. } => wsd_decay_start(decay, steps, warmup),
            _ => steps,
        };
        LrPlan {
            train: *train,
            steps,
            warmup,
            decay_start,
        }
    }

    pub fn warmup(&self) -> u64 {
        self.warmup
    }

    /// The first step of a WSD run's decay (the run's length for other schedules).
    /// The learning rate of every step, in order (step k + 1 at index k).
    pub fn rates(&self) -> Vec<f64> {
        (0..self.steps).map(|k| self.at(k)).collect()
    }

    pub fn decay_start(&self) -> u64 {
        self.decay_start
    }

    /// Learning rate for `step` (0-based).
    pub fn at(&self, step: u64) -> f64 {
        let (peak, steps, warmup) = (self.train.lr, self.steps, self.warmup);
        if step < warmup {
            // Linear warmup reaching the peak at the end of warmup.
            return peak * (step + 1) as f64 / warmup as f64;
        }
        // Fraction of the post-warmup part done, 0 at the first step after warmup, 1 at the
        // last.
        let after = steps - warmup;
        let progress = if after <= 1 {
            1.0
        } else {
            (step - warmup) as f64 / (after - 1) as f64
        };
        match self.train.schedule {
            Schedule::Constant => peak,
            Schedule::Cosine { min_lr_ratio } => {
                let min = peak * min_lr_ratio;
                min + 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()) * (peak - min)
            }
            Schedule::Wsd { min_lr_ratio, .. } => {
                // Warmup–stable–decay (Hu et al. 2024, MiniCPM): constant, then a linear decay
                // over the last `decay` fraction of all steps.
                let decay_start = self.decay_start;
                if step < decay_start {
                    peak
                } else {
                    let span = (steps - decay_start).max(1);
                    let t = if span == 1 {
                        1.0
                    } else {
                        (step - decay_start) as f64 / (span - 1) as f64
                    };
                    let min = peak * min_lr_ratio;
                    peak + (min - peak) * t
                }
            }
        }
    }
}

/// First step of a WSD run's decay: the last `decay` fraction of `steps` (at least one step),
/// never inside the warmup.
pub fn wsd_decay_start(decay: f64, steps: u64, warmup: u64) -> u64 {
    steps
        .saturating_sub(wsd_decay_steps(decay, steps))
        .max(warmup)
}

/// Steps a WSD run of `steps` spends decaying: the `decay` fraction, at least one.
pub fn wsd_decay_steps(decay: f64, steps: u64) -> u64 {
    ((decay * steps as f64).round() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(schedule: Schedule, warmup: f64) -> TrainSpec {
        TrainSpec {
            batch: 8,
            lr: 1e-3,
            schedule,
            warmup,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            grad_clip: 1.0,
            eval_every: 10,
            eval_tokens: 64,
        }
    }

    #[test]
    fn cosine_warms_up_then_ends_at_ten_percent_on_the_last_step() {
        let t = spec(Schedule::Cosine { min_lr_ratio: 0.1 }, 0.1);
        let steps = 100;
        assert!((lr_at(&t, 0, steps) - 1e-4).abs() < 1e-12);
        assert!((lr_at(&t, 9, steps) - 1e-3).abs() < 1e-12);
        assert!((lr_at(&t, 10, steps) - 1e-3).abs() < 1e-12);
        assert!((lr_at(&t, 99, steps) - 1e-4).abs() < 1e-12);
        // Monotone decay after warmup.
        for s in 10..99 {
            assert!(lr_at(&t, s + 1, steps) <= lr_at(&t, s, steps));
        }
    }

    #[test]
    fn wsd_is_flat_then_decays_linearly() {
        let t = spec(
            Schedule::Wsd {
                decay: 0.2,
                min_lr_ratio: 0.0,
            },
            0.0,
        );
        assert_eq!(lr_at(&t, 0, 100), 1e-3);
        assert_eq!(lr_at(&t, 79, 100), 1e-3);
        assert_eq!(lr_at(&t, 80, 100), 1e-3);
        assert!(lr_at(&t, 90, 100) < 1e-3);
        assert_eq!(lr_at(&t, 99, 100), 0.0);
        assert_eq!(lr_at(&spec(Schedule::Constant, 0.0), 50, 100), 1e-3);
    }

    #[test]
    fn single_step_runs_are_defined() {
        let t = spec(Schedule::Cosine { min_lr_ratio: 0.1 }, 0.5);
        assert!((lr_at(&t, 0, 1) - 1e-4).abs() < 1e-12);
    }
}
