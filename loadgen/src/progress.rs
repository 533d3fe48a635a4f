//! The terminal progress bar (`indicatif`): elapsed against planned time, and throughput so far.
#![forbid(unsafe_code)]

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use ringtail_loadgen::counters::Totals;
use ringtail_loadgen::run::Progress;

pub struct Bar {
    bar: ProgressBar,
    phase: Mutex<String>,
}

impl Bar {
    pub fn new() -> Self {
        let bar = ProgressBar::new(1);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:>8} [{bar:30}] {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Self {
            bar,
            phase: Mutex::new(String::new()),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn tick(&self, phase: &str, elapsed: Duration, total: Duration, totals: &Totals) {
        let mut current = self.phase.lock().expect("not poisoned");
        if *current != phase {
            *current = phase.to_string();
            self.bar.set_prefix(phase.to_string());
        }
        let seconds = elapsed.as_secs_f64().max(1e-3);
        self.bar.set_length(total.as_millis().max(1) as u64);
        self.bar.set_position(elapsed.as_millis() as u64);
        self.bar.set_message(format!(
            "{:.0}s  produced {:.1} MB/s ({} msgs)  consumed {:.1} MB/s ({} msgs)",
            elapsed.as_secs_f64(),
            totals.produced_bytes as f64 / 1e6 / seconds,
            totals.produced_messages,
            totals.consumed_bytes as f64 / 1e6 / seconds,
            totals.consumed_messages,
        ));
    }
}
