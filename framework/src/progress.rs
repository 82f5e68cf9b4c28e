//! Progress for people: an indicatif bar with ETA on a terminal, plain log lines when stderr
//! is a file or a pipe (CI logs), nothing with `--quiet`; or, when a host program shows progress
//! itself (the Python module's notebook bars), every event handed to its [`ProgressSink`].

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// Receives progress instead of stderr (see [`set_sink`]). Called from whichever thread
/// reports, evaluation networks included: implementations must be cheap and thread-safe.
pub trait ProgressSink: Send + Sync {
    /// Task `id` (unique in the process) of `total` steps started, `done` of them already done.
    fn start(&self, id: u64, label: &str, total: usize, done: usize);
    /// Task `id` reached step `done`; `message` describes it.
    fn step(&self, id: u64, done: usize, message: &str);
    /// Task `id` ended.
    fn finish(&self, id: u64);
    /// A line that must be seen.
    fn line(&self, line: &str);
}

static SINK: RwLock<Option<Arc<dyn ProgressSink>>> = RwLock::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Sends the progress of every task started from now on to `sink` instead of stderr (None:
/// back to stderr). Process-wide: for a host that runs one command at a time.
pub fn set_sink(sink: Option<Arc<dyn ProgressSink>>) {
    if let Ok(mut s) = SINK.write() {
        *s = sink;
    }
}

fn current_sink() -> Option<Arc<dyn ProgressSink>> {
    SINK.read().ok().and_then(|s| s.clone())
}

/// Reports progress through `total` steps of one task.
pub struct Progress {
    /// The host's sink and this task's id in it, when one is installed.
    sink: Option<(Arc<dyn ProgressSink>, u64)>,
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
        let sink = if quiet { None } else { current_sink() };
        if let Some(sink) = sink {
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            sink.start(id, label, total, 0);
            return Self {
                sink: Some((sink, id)),
                bar: None,
                plain: false,
                label: label.into(),
                total,
                every: every.max(1),
                started: Instant::now(),
                already_done: 0,
            };
        }
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
            sink: None,
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
        if let Some((sink, id)) = &self.sink {
            sink.step(*id, self.already_done, "resumed");
        }
        if let Some(bar) = &self.bar {
            bar.set_position(self.already_done as u64);
            bar.reset_eta();
        }
        self
    }

    /// Step `done` (1-based) finished; `message` describes it.
    pub fn step(&self, done: usize, message: &str) {
        if let Some((sink, id)) = &self.sink {
            sink.step(*id, done, message);
        } else if let Some(bar) = &self.bar {
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
        if let Some((sink, _)) = &self.sink {
            return sink.line(line);
        }
        match &self.bar {
            Some(bar) => bar.println(line),
            None if self.plain => eprintln!("{line}"),
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some((sink, id)) = &self.sink {
            sink.finish(*id);
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
