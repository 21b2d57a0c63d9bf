//! Following a file another process appends lines to: an external trainer's `curve.jsonl`,
//! a Slurm task's log.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

/// Reads a file's new complete lines as they are appended.
pub struct LineTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl LineTail {
    pub fn new(path: PathBuf) -> Self {
        LineTail {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// The complete lines appended since the last call (none while the file is missing).
    pub fn lines(&mut self) -> Vec<String> {
        let Ok(mut file) = File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut fresh = Vec::new();
        let Ok(n) = file.read_to_end(&mut fresh) else {
            return Vec::new();
        };
        self.offset += n as u64;
        self.partial.extend_from_slice(&fresh);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        String::from_utf8_lossy(&complete)
            .lines()
            .map(String::from)
            .collect()
    }
}

/// A step line: `{"step": …, "train_loss": …}` (or `"loss"`).
#[derive(serde::Deserialize)]
struct Step {
    step: u64,
    #[serde(alias = "loss")]
    train_loss: serde_json::Value,
}

/// The step and loss of a step line.
pub fn step_of(line: &str) -> Option<(u64, f64)> {
    let step = serde_json::from_str::<Step>(line).ok()?;
    Some((step.step, step.train_loss.as_f64().unwrap_or(f64::NAN)))
}

/// Reports the last step line of each read.
pub struct StepTail(LineTail);

impl StepTail {
    pub fn new(path: PathBuf) -> Self {
        StepTail(LineTail::new(path))
    }

    pub fn read(&mut self, on_step: &mut dyn FnMut(u64, f64)) {
        if let Some((step, loss)) = self.0.lines().iter().rev().find_map(|l| step_of(l)) {
            on_step(step, loss);
        }
    }
}
