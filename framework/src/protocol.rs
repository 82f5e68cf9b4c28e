//! Published protocols as data: every setting of a method's condensation and evaluation as the
//! paper's public code ran it, one TOML file per method and variant, each value beside the
//! reference file and line it comes from.
//!
//! A protocol is a layer of settings between cafe-lab's built-in defaults and the user's
//! (`--config` file, flags, `--set`): `cafe-lab --matcher distribution` means the DM paper's
//! protocol unless the user overrides a setting, and `--protocol NAME` picks a variant
//! (`--protocol none`: the built-in defaults alone). Plugin crates register their own files with
//! [`register_protocol!`](crate::register_protocol), so a new method ships its protocol beside
//! its matcher.
//!
//! A file holds:
//! ```toml
//! name = "dc"                      # what --protocol takes
//! description = "one line for `cafe-lab list`"
//! paper = "..."
//! reference = "owner/repo@commit"
//! default_for = "gradient"         # optional: the protocol that --matcher gradient means
//! [settings]                       # config keys, as in config.json and --config files
//! matcher = { name = "gradient", dis_metric = "ours" }
//! [[when]]                         # optional: settings for one dataset and/or ipc
//! dataset = "mnist"
//! settings = { ... }
//! ```

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

use crate::{Error, Result};

/// One registered protocol file (the `register_protocol!` macro builds these).
pub struct ProtocolSource {
    /// The file's name, for messages.
    pub file: &'static str,
    /// The file's TOML text.
    pub text: &'static str,
}

inventory::collect!(ProtocolSource);

/// Registers a protocol file: `register_protocol!("dc.toml", include_str!("../protocols/dc.toml"));`
#[macro_export]
macro_rules! register_protocol {
    ($file:expr, $text:expr) => {
        $crate::inventory::submit! {
            $crate::protocol::ProtocolSource { file: $file, text: $text }
        }
    };
}

/// Settings that apply only to one dataset and/or one ipc.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub dataset: Option<String>,
    pub ipc: Option<usize>,
    pub settings: Value,
}

/// A parsed protocol file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    pub name: String,
    pub description: String,
    pub paper: String,
    pub reference: String,
    /// The matcher whose default protocol this is (`--matcher M` without `--protocol`).
    pub default_for: Option<String>,
    pub settings: Value,
    #[serde(default)]
    pub when: Vec<Variant>,
}

/// The name that turns protocols off: the built-in defaults and the matcher's own.
pub const NO_PROTOCOL: &str = "none";

/// Dataset names compared without case, `-` or `_` (`fashion-mnist` = `FashionMNIST`).
fn same_dataset(a: &str, b: &str) -> bool {
    let canonical = |s: &str| s.to_ascii_lowercase().replace(['-', '_'], "");
    canonical(a) == canonical(b)
}

impl Protocol {
    /// Parses the protocol file called `file` from its TOML `text`. Refuses the reserved name
    /// and settings that are not tables of config keys.
    pub fn parse(file: &str, text: &str) -> Result<Protocol> {
        let parsed: Protocol =
            toml::from_str(text).map_err(|e| Error::Other(format!("protocol file {file} does not parse: {e}")))?;
        if parsed.name == NO_PROTOCOL {
            return Err(Error::Other(format!(
                "protocol file {file}: the name '{NO_PROTOCOL}' is reserved"
            )));
        }
        let tables = std::iter::once(("[settings]".to_string(), &parsed.settings)).chain(
            parsed
                .when
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("the settings of [[when]] {}", i + 1), &v.settings)),
        );
        for (what, settings) in tables {
            if !settings.is_object() {
                return Err(Error::Other(format!(
                    "protocol file {file}: {what} must be a table of config keys, found {settings}"
                )));
            }
        }
        Ok(parsed)
    }

    /// The settings for `dataset` and `ipc`: the base settings, then every matching variant
    /// in file order, and `protocol = name`.
    pub fn settings_for(&self, dataset: &str, ipc: usize) -> Value {
        let mut value = self.settings.clone();
        for v in &self.when {
            let dataset_fits = v.dataset.as_deref().is_none_or(|d| same_dataset(d, dataset));
            if dataset_fits && v.ipc.is_none_or(|i| i == ipc) {
                crate::json_merge::merge_layer(&mut value, &v.settings);
            }
        }
        // `parse` makes the settings a table; a Protocol built otherwise gets one here rather
        // than a panic from indexing a non-object.
        if !value.is_object() {
            value = Value::Object(serde_json::Map::new());
        }
        value["protocol"] = Value::String(self.name.clone());
        value
    }
}

/// Every registered protocol by name, parsed once per process. A file that does not parse,
/// or two files with one name, is an error naming the file.
pub fn protocols() -> Result<&'static BTreeMap<String, Protocol>> {
    static INDEX: OnceLock<std::result::Result<BTreeMap<String, Protocol>, String>> = OnceLock::new();
    INDEX
        .get_or_init(parse_protocols)
        .as_ref()
        .map_err(|e| Error::Other(e.clone()))
}

fn parse_protocols() -> std::result::Result<BTreeMap<String, Protocol>, String> {
    let mut map = BTreeMap::new();
    for source in inventory::iter::<ProtocolSource> {
        let parsed = Protocol::parse(source.file, source.text).map_err(|e| e.to_string())?;
        if let Some(previous) = map.insert(parsed.name.clone(), parsed) {
            return Err(format!(
                "protocol '{}' is registered twice (again by {}); names must be unique",
                previous.name, source.file
            ));
        }
    }
    Ok(map)
}

/// The protocol called `name`; an unknown name lists the valid ones.
pub fn find_protocol(name: &str) -> Result<&'static Protocol> {
    let all = protocols()?;
    let valid: Vec<String> = all.keys().cloned().chain([NO_PROTOCOL.to_string()]).collect();
    all.get(&name.to_ascii_lowercase()).ok_or_else(|| {
        Error::invalid(
            "protocol",
            name,
            format!("valid names: {} (`cafe-lab list` shows them)", valid.join(", ")),
        )
    })
}

/// The protocol that `--matcher matcher` means without `--protocol` (None: the matcher has
/// none, e.g. a plugin's own matcher).
pub fn default_protocol_for(matcher: &str) -> Result<Option<&'static Protocol>> {
    Ok(protocols()?.values().find(|p| {
        p.default_for
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(matcher))
    }))
}

/// The protocol layer for a configuration whose user layers are `user` over the defaults
/// `base`: `user.protocol` if set (`none`: no layer), else the default protocol of the chosen
/// matcher; its variants picked by the chosen dataset and ipc.
pub fn protocol_layer(base: &Value, user: &Value) -> Result<Option<Value>> {
    let pick = |key: &str| user.get(key).filter(|v| !v.is_null()).or_else(|| base.get(key));
    let protocol = match pick("protocol").and_then(Value::as_str) {
        Some(name) if name.eq_ignore_ascii_case(NO_PROTOCOL) => return Ok(None),
        Some(name) => find_protocol(name)?,
        None => {
            let matcher = pick("matcher")
                .and_then(|m| m.get("name").or(Some(m)))
                .and_then(Value::as_str)
                .unwrap_or_default();
            match default_protocol_for(matcher)? {
                Some(p) => p,
                None => return Ok(None),
            }
        }
    };
    let dataset = pick("dataset").and_then(Value::as_str).unwrap_or_default();
    let ipc = pick("ipc").and_then(Value::as_u64).unwrap_or_default() as usize;
    Ok(Some(protocol.settings_for(dataset, ipc)))
}
