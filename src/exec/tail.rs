//! Following a growing file of JSON step lines: an external trainer's `curve.jsonl`, a
//! Slurm task's log.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

/// Reads a file's new complete lines as another process appends them, reporting the last
/// step line (`{"step": …, "train_loss": …}`, or `"loss"`) of each read.
pub struct StepTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

#[derive(serde::Deserialize)]
struct Step {
    step: u64,
    #[serde(alias = "loss")]
    train_loss: serde_json::Value,
}

impl StepTail {
    pub fn new(path: PathBuf) -> Self {
        StepTail {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    pub fn read(&mut self, on_step: &mut dyn FnMut(u64, f64)) {
        let Ok(mut file) = File::open(&self.path) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut fresh = Vec::new();
        let Ok(n) = file.read_to_end(&mut fresh) else {
            return;
        };
        self.offset += n as u64;
        self.partial.extend_from_slice(&fresh);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        let mut last = None;
        for line in complete.split(|b| *b == b'\n') {
            if let Ok(step) = serde_json::from_slice::<Step>(line) {
                last = Some((step.step, step.train_loss.as_f64().unwrap_or(f64::NAN)));
            }
        }
        if let Some((step, loss)) = last {
            on_step(step, loss);
        }
    }
}
