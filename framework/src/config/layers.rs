//! The user's layers of settings and where each setting came from. The layers (a `--config`
//! file, the flags, each `--set`) are kept beside the merged value, so that a setting that
//! does not fit the schema is reported with its key (`ipc`, `eval.epochs`,
//! `lr_img_halve_at[1]`) and the last layer that set it, which is the one to fix. Used by the
//! run configuration ([`crate::config::ConfigBuilder`]) and by `experts`' settings.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::json_merge::{merge_layer, normalise_plugin_shorthand};
use crate::{Error, Result};

/// One layer of settings, as merged, and where it came from, e.g. `--config run.toml`.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub origin: String,
    pub patch: Value,
}

/// The user's layers, merged in order, and each one kept to name it in errors.
#[derive(Debug, Clone)]
pub struct UserLayers {
    merged: Value,
    layers: Vec<Layer>,
}

impl Default for UserLayers {
    fn default() -> Self {
        Self {
            merged: Value::Object(Map::new()),
            layers: Vec::new(),
        }
    }
}

impl UserLayers {
    /// Everything merged so far.
    pub fn merged(&self) -> &Value {
        &self.merged
    }

    /// Merges `patch` over the layers so far, naming where it came from (e.g. "the
    /// command-line flags") for the error about a setting that does not fit.
    pub fn merge_from(&mut self, origin: impl Into<String>, patch: &Value) {
        merge_layer(&mut self.merged, patch);
        let mut patch = patch.clone();
        normalise_plugin_shorthand(&mut patch);
        self.layers.push(Layer {
            origin: origin.into(),
            patch,
        });
    }

    /// Merges a TOML file.
    pub fn merge_toml_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading config file {}", path.display()), e))?;
        let json = toml_to_json(&text).map_err(|e| Error::invalid("--config", path.display(), e))?;
        self.merge_from(format!("--config {}", path.display()), &json);
        Ok(())
    }

    /// Applies one `path=value` override, e.g. `matcher.dis_metric=cos` or `eval.epochs=50`.
    /// The value is read as JSON when it parses (numbers, booleans, arrays) and as a string
    /// otherwise.
    pub fn set(&mut self, assignment: &str) -> Result<()> {
        let patch = parse_assignment(assignment)?;
        self.merge_from(format!("--set {assignment}"), &patch);
        Ok(())
    }

    /// `merged` (the base, protocol and these layers merged) as a `T`; an error names the
    /// key, its value and the layer that set it.
    pub fn deserialize<T: DeserializeOwned>(&self, merged: &Value) -> Result<T> {
        deserialize(merged, &self.layers)
    }
}

/// `T`'s defaults with `flags` (a JSON object of settings) merged over them, then each
/// `PATH=VALUE` of `sets`, merged as a run's `--set` is: what `experts` and `teacher` take.
pub fn defaults_with_overrides<T: Default + serde::Serialize + DeserializeOwned>(
    flags: &Value,
    sets: &[String],
) -> Result<T> {
    let mut layers = UserLayers::default();
    layers.merge_from("the command-line flags", flags);
    for assignment in sets {
        layers.set(assignment)?;
    }
    let mut value = serde_json::to_value(T::default()).map_err(|e| Error::Other(e.to_string()))?;
    merge_layer(&mut value, layers.merged());
    layers.deserialize(&value)
}

/// TOML text as JSON; the error says why it is not valid TOML.
pub(crate) fn toml_to_json(text: &str) -> std::result::Result<Value, String> {
    let parsed: toml::Value = toml::from_str(text).map_err(|e| format!("not valid TOML: {e}"))?;
    serde_json::to_value(parsed).map_err(|e| format!("not representable as JSON: {e}"))
}

/// The most keys a `--set` path may have.
const MAX_SET_PATH_KEYS: usize = 16;

/// `path=value` as a nested JSON object: `a.b=3` is `{"a": {"b": 3}}`.
fn parse_assignment(assignment: &str) -> Result<Value> {
    let (path, raw) = assignment
        .split_once('=')
        .ok_or_else(|| Error::invalid("--set", assignment, "expected PATH=VALUE, e.g. matcher.dis_metric=cos"))?;
    let mut patch = serde_json::from_str::<Value>(raw.trim()).unwrap_or_else(|_| Value::String(raw.trim().to_string()));
    let keys: Vec<&str> = path.trim().split('.').collect();
    // Every setting lies a few keys deep; a path of thousands would nest the patch as deep, and
    // merging and dropping nested JSON recurse: past this, the stack would run out.
    if keys.len() > MAX_SET_PATH_KEYS {
        return Err(Error::invalid(
            "--set",
            assignment,
            format!(
                "the path has {} keys; settings lie at most {MAX_SET_PATH_KEYS} deep (e.g. eval.augment.strategy)",
                keys.len()
            ),
        ));
    }
    for key in keys.into_iter().rev() {
        if key.is_empty() {
            return Err(Error::invalid("--set", assignment, "empty key in path"));
        }
        let mut m = Map::new();
        m.insert(key.to_string(), patch);
        patch = Value::Object(m);
    }
    Ok(patch)
}

/// The merged settings as a `T`; an error names the key, its value and its layer.
fn deserialize<T: DeserializeOwned>(merged: &Value, layers: &[Layer]) -> Result<T> {
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
