//! Building a [`RunConfig`] layer by layer: a base (the built-in defaults, or the
//! configuration saved in a synthetic set), the published protocol (see [`crate::protocol`]),
//! then the user's layers (`--config` file, flags, `--set`) in the order they are merged.

use std::path::Path;

use serde_json::Value;

use super::layers::UserLayers;
use super::RunConfig;
use crate::json_merge::merge_layer;
use crate::Result;

/// See the module header.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    base: Value,
    user: UserLayers,
    /// Whether the protocol layer goes between base and user (not over a saved configuration,
    /// which already holds its protocol's settings).
    with_protocol: bool,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        Self {
            base: serde_json::to_value(RunConfig::default()).expect("RunConfig serialises"),
            user: UserLayers::default(),
            with_protocol: true,
        }
    }
}

impl ConfigBuilder {
    /// A builder whose base is a saved, fully resolved configuration (a run's config.json or a
    /// synthetic set's metadata): no protocol layer, the user's layers over it.
    pub fn from_saved(saved: &Value) -> Self {
        let mut base = serde_json::to_value(RunConfig::default()).expect("RunConfig serialises");
        let mut saved = saved.clone();
        if let Value::Object(m) = &mut saved {
            // Written for the record, not settings.
            m.remove("second_order_gradients");
        }
        merge_layer(&mut base, &saved);
        Self {
            base,
            user: UserLayers::default(),
            with_protocol: false,
        }
    }

    /// Merges a TOML file over the current settings.
    pub fn merge_toml_file(&mut self, path: &Path) -> Result<&mut Self> {
        self.user.merge_toml_file(path)?;
        Ok(self)
    }

    /// Merges a JSON object over the user's settings so far (see
    /// [`crate::json_merge::merge_layer`]).
    pub fn merge(&mut self, patch: &Value) -> &mut Self {
        self.merge_from("ConfigBuilder::merge", patch)
    }

    /// [`merge`](Self::merge), naming where the settings came from (e.g. "the command-line
    /// flags") for the error about a setting that does not fit.
    pub fn merge_from(&mut self, origin: impl Into<String>, patch: &Value) -> &mut Self {
        self.user.merge_from(origin, patch);
        self
    }

    /// Applies one `path=value` override, e.g. `matcher.dis_metric=cos` or `eval.epochs=50`.
    /// The value is read as JSON when it parses (numbers, booleans, arrays) and as a string
    /// otherwise.
    pub fn set(&mut self, assignment: &str) -> Result<&mut Self> {
        self.user.set(assignment)?;
        Ok(self)
    }

    /// The merged settings as JSON: base, protocol, user layers.
    pub fn merged(&self) -> Result<Value> {
        let mut value = self.base.clone();
        let user = self.user.merged();
        // Over a saved configuration, only a protocol the user names again applies.
        if self.with_protocol || user.get("protocol").is_some_and(|p| !p.is_null()) {
            if let Some(layer) = crate::protocol::protocol_layer(&self.base, user)? {
                merge_layer(&mut value, &layer);
            }
        }
        merge_layer(&mut value, user);
        Ok(value)
    }

    /// The merged settings, checked against the schema (unknown keys are refused); an error
    /// names the key and the layer that set it.
    pub fn build(&self) -> Result<RunConfig> {
        self.user.deserialize(&self.merged()?)
    }
}
