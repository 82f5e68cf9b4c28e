//! Where each setting of the merged configuration came from. The layers (a `--config` file,
//! the flags, each `--set`) are kept beside the merged value, so that a setting that does not
//! fit the schema is reported with its key (`ipc`, `eval.epochs`, `lr_img_halve_at[1]`) and the
//! last layer that set it, which is the one to fix.

use serde_json::Value;

use crate::config::RunConfig;
use crate::{Error, Result};

/// One layer of settings, as merged, and where it came from, e.g. `--config run.toml`.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub origin: String,
    pub patch: Value,
}

/// The merged settings as a [`RunConfig`]; an error names the key, its value and its layer.
pub(crate) fn deserialize(merged: &Value, layers: &[Layer]) -> Result<RunConfig> {
    serde_path_to_error::deserialize(merged).map_err(|e| {
        let path = e.path();
        let found = |root: &Value| lookup(root, path).cloned();
        let value = found(merged).map_or_else(|| "(not set)".to_string(), |v| v.to_string());
        // The merged value at a path is that of the last layer that holds the path.
        let reason = match layers.iter().rev().find(|l| found(&l.patch).is_some()) {
            Some(layer) => format!("{}; it was set by {}", e.inner(), layer.origin),
            None => e.inner().to_string(),
        };
        Error::invalid(path.to_string(), value, reason)
    })
}

/// The value at `path` inside `root`, if every step of it is there.
fn lookup<'v>(root: &'v Value, path: &serde_path_to_error::Path) -> Option<&'v Value> {
    use serde_path_to_error::Segment;
    path.iter().try_fold(root, |v, segment| match segment {
        Segment::Map { key } => v.get(key.as_str()),
        Segment::Seq { index } => v.get(*index),
        Segment::Enum { .. } => Some(v),
        Segment::Unknown => None,
    })
}
