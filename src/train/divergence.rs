//! When a run has diverged, and the loss spikes it recovered from.
//!
//! A loss spike that recovers is normal: PyTorch, on the same model, data, learning rate and
//! schedule, spikes above its initial loss after warm-up in some seeds and still ends where
//! the others do. So one step above the initial loss proves nothing. The rule
//! ([`DIVERGENCE_RULE`] 2), applied to the training loss of every step, for every producer of
//! runs:
//!
//! 1. a non-finite loss (NaN, ±∞) diverges the run at once;
//! 2. after warm-up, a loss above the run's initial loss (its first step's) on every step of a
//!    window of [`Monitor::window`] consecutive steps — `max(20, steps / 10)` — diverges the
//!    run at the window's last step (the loss *stays* up);
//! 3. at the end, a mean loss over the last window (or over every step after warm-up, when
//!    fewer) that is not below the initial loss diverges the run (it never came back down).
//!
//! A *spike* is a step, after warm-up, whose loss exceeds the lowest 10-step moving mean
//! reached so far by more than [`SPIKE_RATIO`]; consecutive such steps are one spike. Every run
//! records how many it had, and the largest (its step, peak loss and ratio): see [`Spikes`].

pub use crate::record::{DIVERGENCE_RULE, Spikes};

/// A step is part of a spike when its loss exceeds the lowest moving mean so far by this
/// factor (20 %).
pub const SPIKE_RATIO: f64 = 1.2;

/// Steps in the moving mean that spikes are measured against.
const SPIKE_MEAN_STEPS: usize = 10;

/// Why a run diverged.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    /// 1-based step at which the rule fired.
    pub step: u64,
    pub why: String,
}

/// The divergence rule, fed one training loss per step.
#[derive(Debug, Clone)]
pub struct Monitor {
    warmup: u64,
    window: u64,
    initial: Option<f64>,
    /// Consecutive steps above the initial loss (after warm-up).
    above: u64,
    recent: std::collections::VecDeque<f64>,
    lowest_mean: f64,
    in_spike: bool,
    after_warmup: Vec<f64>,
    spikes: Spikes,
    step: u64,
}

impl Monitor {
    /// A monitor for a run of `steps` optimizer steps whose first `warmup` steps warm up.
    pub fn new(steps: u64, warmup: u64) -> Self {
        Monitor {
            warmup,
            window: Self::window(steps),
            initial: None,
            above: 0,
            recent: Default::default(),
            lowest_mean: f64::INFINITY,
            in_spike: false,
            after_warmup: Vec::new(),
            spikes: Spikes::default(),
            step: 0,
        }
    }

    /// Consecutive steps above the initial loss that count as sustained: `max(20, steps/10)`.
    pub fn window(steps: u64) -> u64 {
        (steps / 10).max(20)
    }

    /// Record one step's training loss; `Some` when the run has diverged.
    pub fn observe(&mut self, loss: f64) -> Option<Divergence> {
        self.step += 1;
        let step = self.step;
        if !loss.is_finite() {
            return Some(Divergence {
                step,
                why: format!("training loss became {loss} at step {step}"),
            });
        }
        let initial = *self.initial.get_or_insert(loss);
        if step > self.warmup && step > 1 {
            self.after_warmup.push(loss);
            self.track_spike(loss);
            if loss > initial {
                self.above += 1;
                self.spikes.steps_above_initial += 1;
            } else {
                self.above = 0;
            }
            if self.above >= self.window {
                return Some(Divergence {
                    step,
                    why: format!(
                        "training loss stayed above its initial {initial:.4} for {} consecutive \
                         steps after warm-up (now {loss:.4} at step {step}); try a lower lr",
                        self.window
                    ),
                });
            }
        }
        self.recent.push_back(loss);
        if self.recent.len() > SPIKE_MEAN_STEPS {
            self.recent.pop_front();
        }
        if self.recent.len() == SPIKE_MEAN_STEPS {
            let mean = self.recent.iter().sum::<f64>() / SPIKE_MEAN_STEPS as f64;
            self.lowest_mean = self.lowest_mean.min(mean);
        }
        None
    }

    fn track_spike(&mut self, loss: f64) {
        let ratio = loss / self.lowest_mean;
        // Before the first moving mean the ratio is 0; a NaN never reaches here.
        if ratio <= SPIKE_RATIO {
            self.in_spike = false;
            return;
        }
        if !self.in_spike {
            self.spikes.count += 1;
            self.in_spike = true;
        }
        if self.spikes.largest_ratio.is_none_or(|r| ratio > r) {
            self.spikes.largest_ratio = Some(ratio);
            self.spikes.largest_loss = Some(loss);
            self.spikes.largest_step = Some(self.step);
        }
    }

    /// The end-of-run part of the rule; `Some` when the loss never came back down.
    pub fn finish(&self) -> Option<Divergence> {
        let initial = self.initial?;
        let tail = self.window.min(self.after_warmup.len() as u64) as usize;
        if tail == 0 {
            return None;
        }
        let last = &self.after_warmup[self.after_warmup.len() - tail..];
        let mean = last.iter().sum::<f64>() / tail as f64;
        (mean >= initial).then(|| Divergence {
            step: self.step,
            why: format!(
                "training loss did not return below its initial {initial:.4}: the mean of the \
                 last {tail} steps is {mean:.4}; try a lower lr"
            ),
        })
    }

    pub fn spikes(&self) -> &Spikes {
        &self.spikes
    }
}

/// The rule applied to a whole recorded loss sequence (an external trainer's curve, or a
/// recorded one): the divergence if any, and the spikes.
pub fn assess(losses: &[f64], warmup: u64) -> (Option<Divergence>, Spikes) {
    let mut monitor = Monitor::new(losses.len() as u64, warmup);
    for &l in losses {
        if let Some(d) = monitor.observe(l) {
            return (Some(d), monitor.spikes);
        }
    }
    (monitor.finish(), monitor.spikes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A falling loss: 5.5 at step 1 towards 3.3, with a little step-to-step noise.
    fn falling(steps: usize) -> Vec<f64> {
        (0..steps)
            .map(|i| {
                let t = i as f64 / steps as f64;
                3.3 + 2.2 * (-6.0 * t).exp() + 0.02 * ((i * 7919) % 13) as f64 / 13.0
            })
            .collect()
    }

    /// A spike of the kind PyTorch's runs show after warm-up: the loss jumps above its
    /// initial value for a dozen steps, then comes back and ends as low as without it.
    #[test]
    fn a_spike_that_recovers_is_not_a_divergence() {
        let mut losses = falling(300);
        for (k, l) in losses[120..132].iter_mut().enumerate() {
            *l = 6.2 - 0.1 * k as f64;
        }
        let (div, spikes) = assess(&losses, 15);
        assert_eq!(div, None);
        assert_eq!(spikes.count, 1);
        assert_eq!(spikes.largest_step, Some(121));
        assert_eq!(spikes.largest_loss, Some(6.2));
        assert!(spikes.largest_ratio.unwrap() > 1.6);
        // 6.2 − 0.1k stays above the initial 5.5 + noise for k ≤ 6.
        assert!((6..=8).contains(&spikes.steps_above_initial), "{spikes:?}");
        // The rule before version 2 stopped this run at its first step above 5.5.
        assert!(losses[120] > losses[0]);
    }

    #[test]
    fn a_smooth_run_has_no_spikes() {
        let (div, spikes) = assess(&falling(300), 15);
        assert_eq!(div, None);
        assert_eq!(spikes, Spikes::default());
    }

    #[test]
    fn a_loss_that_stays_up_diverges_after_the_window() {
        let mut losses = falling(300);
        for l in &mut losses[100..] {
            *l = 7.0;
        }
        let (div, spikes) = assess(&losses, 15);
        let div = div.expect("diverged");
        assert_eq!(Monitor::window(300), 30);
        assert_eq!(div.step, 130, "{div:?}");
        assert!(div.why.contains("stayed above its initial"), "{}", div.why);
        assert_eq!(spikes.count, 1);
    }

    #[test]
    fn non_finite_loss_diverges_at_once() {
        let mut losses = falling(100);
        losses[40] = f64::NAN;
        let (div, _) = assess(&losses, 5);
        let div = div.unwrap();
        assert_eq!(div.step, 41);
        assert!(
            div.why.starts_with("training loss became NaN"),
            "{}",
            div.why
        );
    }

    /// A loss that hovers at its initial value, dipping below now and then (so no window is
    /// entirely above it), never learned: the end rule catches it.
    #[test]
    fn a_run_that_never_comes_down_diverges_at_the_end() {
        let losses: Vec<f64> = (0..200)
            .map(|i| 5.5 + if i % 5 == 0 { -0.01 } else { 0.05 })
            .collect();
        let (div, _) = assess(&losses, 10);
        let div = div.expect("diverged at the end");
        assert_eq!(div.step, 200);
        assert!(div.why.contains("did not return below"), "{}", div.why);
    }

    /// Warm-up steps never count: a loss above the initial one during warm-up is fine.
    #[test]
    fn warmup_is_exempt() {
        let mut losses = falling(200);
        for l in &mut losses[1..25] {
            *l = 6.0;
        }
        assert_eq!(assess(&losses, 30).0, None);
        assert!(assess(&losses, 2).0.is_some());
    }
}
