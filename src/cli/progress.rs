//! Progress on stderr: an indicatif bar on a terminal, plain log lines otherwise (CI logs,
//! files), so both people and logs get something readable.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::train::Progress;

/// Reports a run's progress.
pub struct RunProgress {
    name: String,
    bar: Option<ProgressBar>,
    /// Plain mode: the last step a line was printed for.
    last_line_step: u64,
}

impl RunProgress {
    pub fn new(name: &str, steps: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(steps);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} steps {msg} ({elapsed} < {eta})",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_prefix(name.to_string());
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        RunProgress {
            name: name.to_string(),
            bar,
            last_line_step: 0,
        }
    }

    pub fn update(&mut self, p: &Progress) {
        let tokens_per_second = p.tokens as f64 / p.elapsed.max(1e-9);
        let val = p
            .val_loss
            .map(|v| format!(" val {v:.4}"))
            .unwrap_or_default();
        match &self.bar {
            Some(bar) => {
                bar.set_position(p.step);
                if p.val_loss.is_some() || p.step.is_multiple_of(10) {
                    bar.set_message(format!(
                        "loss {:.4}{val} {tokens_per_second:.0} tok/s",
                        p.train_loss
                    ));
                }
            }
            None => {
                // About ten lines per run, plus every evaluation.
                let every = (p.steps / 10).max(1);
                if p.val_loss.is_some()
                    || p.step - self.last_line_step >= every
                    || p.step == p.steps
                {
                    eprintln!(
                        "{}: step {}/{} loss {:.4}{val} lr {:.2e} {tokens_per_second:.0} tok/s",
                        self.name, p.step, p.steps, p.train_loss, p.lr
                    );
                    self.last_line_step = p.step;
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
