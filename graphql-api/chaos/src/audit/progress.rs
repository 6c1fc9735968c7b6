//! A progress line on standard error, for the long reads of a whole log.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// A progress line on standard error, drawn only when it is a terminal, at most ten times a
/// second.
#[derive(Debug)]
pub(crate) struct Progress {
    pub(crate) enabled: bool,
    pub(crate) label: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) total: u64,
    pub(crate) last: Option<Instant>,
}

impl Progress {
    pub(crate) fn new(label: &'static str, unit: &'static str, total: u64, wanted: bool) -> Self {
        Self {
            enabled: wanted && std::io::stderr().is_terminal(),
            label,
            unit,
            total,
            last: None,
        }
    }

    pub(crate) fn update(&mut self, done: u64) {
        if !self.enabled
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(Instant::now());
        const WIDTH: u64 = 30;
        if self.total == 0 {
            eprint!("\r{} {done} {}", self.label, self.unit);
            return;
        }
        let done = done.min(self.total);
        let filled = (done * WIDTH / self.total) as usize;
        eprint!(
            "\r{} [{}{}] {:>3}% {done}/{} {}",
            self.label,
            "#".repeat(filled),
            ".".repeat(WIDTH as usize - filled),
            done * 100 / self.total,
            self.total,
            self.unit,
        );
    }

    pub(crate) fn finish(&mut self) {
        if self.enabled && self.last.is_some() {
            // Clear the line so that what follows starts clean.
            eprint!("\r\x1b[2K");
        }
    }
}
