//! Running a long cafe-lab command from Python: on a worker thread, the GIL released, while
//! the calling thread watches for Ctrl-C. A notebook's "interrupt" (SIGINT) reaches Python's
//! signal handler, which only runs when some thread asks for it (`Python::check_signals`, on
//! the main thread); the watcher asks every 100 ms, and on `KeyboardInterrupt` sets the run's
//! interrupt flag (`RunOptions::interrupt`): a condensation stops after its current iteration
//! and writes a checkpoint, an evaluation before its next network. The command's own error
//! then comes back as Python's `KeyboardInterrupt`, with cafe-lab's message (how to resume).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use cafe_framework::progress::{set_sink, ProgressSink};
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;

use crate::errors::{to_py, CafeLabError};

/// What the worker thread ends with: its result, or the panic that ended it.
type Outcome<T> = std::thread::Result<cafe_framework::Result<T>>;

/// Set by the watcher on Ctrl-C; one command runs at a time ([`RUNNING`]), which resets it.
static INTERRUPT: AtomicBool = AtomicBool::new(false);
/// True while a command runs: the progress sink and the flag are process-wide.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// How often the watcher looks for Ctrl-C.
const POLL: Duration = Duration::from_millis(100);

/// Forwards progress to a Python callable `callback(event, id, label, total, done, message)`
/// (`event` one of "start", "step", "finish", "line"); the Python side draws tqdm bars.
struct PySink {
    callback: Py<PyAny>,
}

impl PySink {
    fn call(&self, event: &str, id: u64, label: &str, total: usize, done: usize, message: &str) {
        Python::attach(|py| {
            // A failing progress bar must not stop the run: show Python's error and go on.
            if let Err(e) = self.callback.call1(py, (event, id, label, total, done, message)) {
                e.print(py);
            }
        });
    }
}

impl ProgressSink for PySink {
    fn start(&self, id: u64, label: &str, total: usize, done: usize) {
        self.call("start", id, label, total, done, "");
    }
    fn step(&self, id: u64, done: usize, message: &str) {
        self.call("step", id, "", 0, done, message);
    }
    fn finish(&self, id: u64) {
        self.call("finish", id, "", 0, 0, "");
    }
    fn line(&self, line: &str) {
        self.call("line", 0, "", 0, 0, line);
    }
}

/// Clears the process-wide state when the command ends, however it ends.
struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        set_sink(None);
        RUNNING.store(false, Ordering::SeqCst);
    }
}

/// Runs `job` (given the interrupt flag) on a worker thread with the GIL released, watching
/// for Ctrl-C; progress goes to `progress` when given (else to stderr as the CLI prints it).
pub fn run_watched<T, F>(py: Python<'_>, progress: Option<Py<PyAny>>, job: F) -> PyResult<T>
where
    T: Send + 'static,
    F: FnOnce(&'static AtomicBool) -> cafe_framework::Result<T> + Send + 'static,
{
    if RUNNING.swap(true, Ordering::SeqCst) {
        return Err(CafeLabError::new_err(
            "another cafe-lab command is running in this process; cafe-lab runs one at a time",
        ));
    }
    let _running = Running;
    INTERRUPT.store(false, Ordering::SeqCst);
    if let Some(callback) = progress {
        set_sink(Some(Arc::new(PySink { callback })));
    }
    // The worker's outcome, and a condition variable to wait on it a poll at a time (a channel's
    // receiver is not Sync, so it could not be waited on with the GIL released).
    let slot: Arc<(Mutex<Option<Outcome<T>>>, Condvar)> = Arc::new((Mutex::new(None), Condvar::new()));
    let filled = Arc::clone(&slot);
    let worker = std::thread::Builder::new()
        .name("cafe-lab".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&INTERRUPT)));
            let (lock, ready) = &*filled;
            if let Ok(mut s) = lock.lock() {
                *s = Some(outcome);
            }
            ready.notify_all();
        })
        .map_err(|e| CafeLabError::new_err(format!("could not start the cafe-lab thread: {e}")))?;
    let wait = || -> Option<Outcome<T>> {
        let (lock, ready) = &*slot;
        let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (mut guard, _) = ready
            .wait_timeout_while(guard, POLL, |s| s.is_none())
            .unwrap_or_else(|p| p.into_inner());
        guard.take()
    };
    let mut interrupt: Option<PyErr> = None;
    let outcome = loop {
        if let Some(outcome) = py.detach(wait) {
            break outcome;
        }
        if worker.is_finished() {
            // Finished without filling the slot (its lock was poisoned): no result to give.
            if let Some(outcome) = py.detach(wait) {
                break outcome;
            }
            return Err(CafeLabError::new_err("the cafe-lab thread ended without a result"));
        }
        if let Err(e) = py.check_signals() {
            // The first exception is kept (a KeyboardInterrupt, or whatever another signal
            // handler raised); any signal stops the run as Ctrl-C does.
            interrupt.get_or_insert(e);
            if !INTERRUPT.swap(true, Ordering::SeqCst) {
                eprintln!(
                    "\nKeyboardInterrupt: cafe-lab stops after the current iteration (a condensation \
                     writes a checkpoint) or before the next evaluation network"
                );
            }
        }
    };
    let _ = py.detach(|| worker.join());
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            let stopped = matches!(
                e,
                cafe_framework::Error::Interrupted { .. } | cafe_framework::Error::EvaluationInterrupted
            );
            match interrupt {
                // Another handler's exception wins over cafe-lab's interruption message.
                Some(other) if stopped && !other.is_instance_of::<PyKeyboardInterrupt>(py) => Err(other),
                _ => Err(to_py(&e)),
            }
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            Err(CafeLabError::new_err(format!(
                "internal error in cafe-lab (please report it): {what}"
            )))
        }
    }
}
