//! The settings targets: a `--config` TOML file, `--set` assignments and a protocol file, each
//! taken as far as a resolved run (with the plugins the binary links; without them, the
//! first plugin lookup refuses).

use std::path::Path;

use serde_json::json;

use super::scratch_file;
use crate::config::ConfigBuilder;
use crate::protocol::Protocol;
use crate::run::resolve;
use crate::Result;

/// Builds and resolves the settings of `builder`.
fn resolved(builder: &ConfigBuilder) -> Result<()> {
    resolve(&builder.build()?).map(drop)
}

pub(super) fn config_toml(input: &[u8], scratch: &Path) -> Result<()> {
    let path = scratch_file(scratch, "config.toml", input)?;
    let mut builder = ConfigBuilder::default();
    builder.merge_toml_file(&path)?;
    resolved(&builder)
}

pub(super) fn config_set(input: &[u8]) -> Result<()> {
    let text = String::from_utf8_lossy(input);
    let mut builder = ConfigBuilder::default();
    for line in text.lines() {
        builder.set(line)?;
    }
    resolved(&builder)
}

pub(super) fn protocol(input: &[u8]) -> Result<()> {
    let protocol = Protocol::parse("fuzz.toml", &String::from_utf8_lossy(input))?;
    let mut outcome = Ok(());
    for (dataset, ipc) in [("mnist", 1), ("CIFAR-10", 10), ("svhn", 50), ("", 0)] {
        let mut settings = protocol.settings_for(dataset, ipc);
        // The layer as `--protocol` would apply it, over the built-in defaults (the name
        // itself would be looked up among the registered protocols).
        if let Some(map) = settings.as_object_mut() {
            map.remove("protocol");
        }
        let mut builder = ConfigBuilder::from_saved(&json!({}));
        builder.merge_from("the protocol", &settings);
        outcome = outcome.and(resolved(&builder));
    }
    outcome
}
