//! Progress for people: an indicatif bar with ETA on a terminal, plain log lines when stderr
//! is a file or a pipe (CI logs), nothing with `--quiet`.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// Reports progress through `total` steps of one task.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    label: String,
    total: usize,
    every: usize,
    started: Instant,
    /// Steps already done before this process started (a resumed run): the ETA rate counts
    /// only the steps this process ran.
    already_done: usize,
}

impl Progress {
    /// `every`: in plain mode, print one line every this many steps (and the first and last).
    pub fn new(label: &str, total: usize, quiet: bool, every: usize) -> Self {
        let terminal = !quiet && std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed} < {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar
        });
        Self {
            bar,
            plain: !quiet && !terminal,
            label: label.into(),
            total,
            every: every.max(1),
            started: Instant::now(),
            already_done: 0,
        }
    }

    /// The same progress for a task resumed after `done` of its steps.
    pub fn resumed_after(mut self, done: usize) -> Self {
        self.already_done = done.min(self.total);
        if let Some(bar) = &self.bar {
            bar.set_position(self.already_done as u64);
            bar.reset_eta();
        }
        self
    }

    /// Step `done` (1-based) finished; `message` describes it.
    pub fn step(&self, done: usize, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            bar.set_message(message.to_string());
        } else if self.plain && (done == 1 || done == self.total || done.is_multiple_of(self.every)) {
            let elapsed = self.started.elapsed().as_secs_f64();
            let ran = done.saturating_sub(self.already_done).max(1);
            let eta = elapsed / ran as f64 * self.total.saturating_sub(done) as f64;
            eprintln!("{} {done}/{}: {message} (ETA {eta:.0} s)", self.label, self.total);
        }
    }

    /// A line that must be seen (printed above the bar on a terminal).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None if self.plain => eprintln!("{line}"),
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
