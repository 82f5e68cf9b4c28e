//! `cafe_lab._native`: the Python module's native half (PyO3, stable ABI from Python 3.9).
//! The Pythonic API (`cafe_lab.condense`, `evaluate`, `load`, `list`, the `SyntheticSet`
//! class, progress bars) is `python/cafe_lab/__init__.py`; this module runs cafe-lab's own
//! commands for it ([`commands`]), moves sets between files and numpy ([`sets`]), watches for
//! Ctrl-C while a command runs ([`watch`]) and turns cafe-lab's errors into Python's
//! ([`errors`]).

mod commands;
mod errors;
mod sets;
mod watch;

use cafe_framework::protocol::protocols;
use cafe_framework::registry::{plugins, PluginKind};
use cafe_framework::traits::{
    architecture::Architecture, augmenter::Augmenter, matcher::Matcher, scheduler::Scheduler,
};
use pyo3::prelude::*;
use serde_json::{json, Value};

use errors::py_result;

/// Every plugin of one kind: name, description, default config.
fn kind<T: ?Sized + PluginKind>() -> cafe_framework::Result<Value> {
    Ok(plugins::<T>()?
        .iter()
        .map(|(name, p)| json!({"name": name, "description": p.description, "config": (p.default_config)()}))
        .collect())
}

/// `cafe-lab list` as JSON text: matchers, schedulers, architectures, augmenters, protocols,
/// datasets.
#[pyfunction]
fn list_plugins() -> PyResult<String> {
    let all = py_result((|| -> cafe_framework::Result<Value> {
        let protocols: Value = protocols()?
            .iter()
            .map(|(name, p)| {
                json!({"name": name, "description": p.description, "paper": p.paper,
                       "reference": p.reference, "default_for": p.default_for})
            })
            .collect();
        Ok(json!({
            "matchers": kind::<dyn Matcher>()?,
            "schedulers": kind::<dyn Scheduler>()?,
            "architectures": kind::<dyn Architecture>()?,
            "augmenters": kind::<dyn Augmenter>()?,
            "protocols": protocols,
            "datasets": cafe_framework::data::dataset_names(),
        }))
    })())?;
    Ok(all.to_string())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The built-in plugins register themselves when linked (CANDLE_NOTES 7).
    cafe_plugins::link();
    cafe_framework::memory::keep_freed_memory_for_reuse();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("CafeLabError", m.py().get_type::<errors::CafeLabError>())?;
    m.add_function(wrap_pyfunction!(list_plugins, m)?)?;
    m.add_function(wrap_pyfunction!(commands::condense, m)?)?;
    m.add_function(wrap_pyfunction!(commands::evaluate_file, m)?)?;
    m.add_function(wrap_pyfunction!(commands::evaluate_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(sets::load_set, m)?)?;
    m.add_function(wrap_pyfunction!(sets::save_set, m)?)?;
    Ok(())
}
