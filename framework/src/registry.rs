//! The plugin registry: plugins register plain data (a name, a one-line description, a default
//! config and a factory) with `inventory`, through the `register_*!` macros; the entries of
//! each kind are indexed once per process into a sorted map (typetag's habit), which every
//! lookup reads.
//!
//! `inventory` entries of a crate that nothing references are dropped by the linker
//! (CANDLE_NOTES 7): every binary and test that needs the plugins must `use cafe_plugins as _;`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::traits::{architecture::Architecture, augmenter::Augmenter, matcher::Matcher, scheduler::Scheduler};
use crate::{Error, Result};

/// One registered plugin of kind `T`.
pub struct Plugin<T: ?Sized + 'static> {
    /// Name used on the command line, lowercase, e.g. `distribution`.
    pub name: &'static str,
    /// One line for `cafe-lab list`.
    pub description: &'static str,
    /// The plugin's default configuration as JSON.
    pub default_config: fn() -> Value,
    /// Builds the plugin from a (complete or partial) JSON configuration.
    pub build: fn(&Value) -> Result<Box<T>>,
}

pub type MatcherPlugin = Plugin<dyn Matcher>;
pub type SchedulerPlugin = Plugin<dyn Scheduler>;
pub type ArchitecturePlugin = Plugin<dyn Architecture>;
pub type AugmenterPlugin = Plugin<dyn Augmenter>;

inventory::collect!(MatcherPlugin);
inventory::collect!(SchedulerPlugin);
inventory::collect!(ArchitecturePlugin);
inventory::collect!(AugmenterPlugin);

/// The plugins of one kind by name, or the name registered twice.
type Index<T> = std::result::Result<BTreeMap<&'static str, &'static Plugin<T>>, &'static str>;

/// The plugin kinds, for messages and listings.
pub trait PluginKind: 'static {
    const KIND: &'static str;
    /// Every registered plugin of the kind, in link order.
    fn entries() -> Vec<&'static Plugin<Self>>;
    /// The kind's index, built on first use.
    #[doc(hidden)]
    fn index() -> &'static Index<Self>;
}

macro_rules! kind {
    ($t:ty, $name:literal, $alias:ty) => {
        impl PluginKind for $t {
            const KIND: &'static str = $name;
            fn entries() -> Vec<&'static Plugin<Self>> {
                inventory::iter::<$alias>.into_iter().collect()
            }
            fn index() -> &'static Index<Self> {
                static INDEX: OnceLock<Index<$t>> = OnceLock::new();
                INDEX.get_or_init(build_index::<$t>)
            }
        }
    };
}

/// Indexes the entries of kind `T` by name; the first name registered twice is the error.
fn build_index<T: ?Sized + PluginKind>() -> Index<T> {
    let mut map = BTreeMap::new();
    for entry in T::entries() {
        if map.insert(entry.name, entry).is_some() {
            return Err(entry.name);
        }
    }
    Ok(map)
}
kind!(dyn Matcher, "matcher", MatcherPlugin);
kind!(dyn Scheduler, "scheduler", SchedulerPlugin);
kind!(dyn Architecture, "architecture", ArchitecturePlugin);
kind!(dyn Augmenter, "augmenter", AugmenterPlugin);

/// All plugins of one kind, sorted by name; a duplicate name is an error.
pub fn plugins<T: ?Sized + PluginKind>() -> Result<&'static BTreeMap<&'static str, &'static Plugin<T>>> {
    T::index().as_ref().map_err(|name| Error::DuplicatePlugin {
        kind: T::KIND,
        name: name.to_string(),
    })
}

/// The plugin of kind `T` called `name`; an unknown name lists the valid ones.
pub fn find<T: ?Sized + PluginKind>(name: &str) -> Result<&'static Plugin<T>> {
    let all = plugins::<T>()?;
    let key = name.to_ascii_lowercase();
    all.get(key.as_str()).copied().ok_or_else(|| Error::UnknownPlugin {
        kind: T::KIND,
        name: name.to_string(),
        valid: all.keys().map(|k| k.to_string()).collect(),
    })
}

/// Sorted names of every plugin of kind `T`.
pub fn names<T: ?Sized + PluginKind>() -> Result<Vec<&'static str>> {
    Ok(plugins::<T>()?.keys().copied().collect())
}

impl<T: ?Sized + PluginKind> Plugin<T> {
    /// The default config with `overrides` merged over it (objects merge key by key).
    pub fn resolve_config(&self, overrides: &Value) -> Value {
        let mut config = (self.default_config)();
        crate::json_merge::merge_json(&mut config, overrides);
        config
    }

    /// Builds the plugin from its defaults with `overrides` merged over them.
    pub fn instantiate(&self, overrides: &Value) -> Result<Box<T>> {
        (self.build)(&self.resolve_config(overrides))
    }
}

pub use crate::json_merge::merge_json;

/// A plugin chosen by name, with its config keys beside the name:
/// `{"name": "gradient", "dis_metric": "cos"}`, or in TOML `[matcher] name = "gradient"`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PluginChoice {
    pub name: String,
    #[serde(flatten)]
    pub config: Map<String, Value>,
}

impl PluginChoice {
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            config: Map::new(),
        }
    }

    /// The config keys as a JSON object (without the name).
    pub fn config_value(&self) -> Value {
        Value::Object(self.config.clone())
    }
}

/// A plugin built from a choice: the object, its fully resolved config (every key, defaults
/// filled in) and its registry entry.
pub struct BuiltPlugin<T: ?Sized + 'static> {
    pub plugin: Box<T>,
    pub config: Value,
    pub entry: &'static Plugin<T>,
}

impl<T: ?Sized + 'static> BuiltPlugin<T> {
    /// The choice written out in full: the registered name and every config key.
    pub fn resolved_choice(&self) -> Value {
        crate::json_merge::with_name(self.entry.name, &self.config)
    }
}

/// Looks `choice` up and builds it with its config over the plugin's defaults.
pub fn build_plugin<T: ?Sized + PluginKind>(choice: &PluginChoice) -> Result<BuiltPlugin<T>> {
    let entry = find::<T>(&choice.name)?;
    let config = entry.resolve_config(&choice.config_value());
    let plugin = (entry.build)(&config)?;
    Ok(BuiltPlugin { plugin, config, entry })
}

/// Parses a plugin's config, naming the plugin and the valid keys when it does not fit.
pub fn parse_config<C: DeserializeOwned + serde::Serialize + Default>(
    kind: &str,
    name: &str,
    value: &Value,
) -> Result<C> {
    serde_json::from_value(value.clone()).map_err(|e| {
        let keys = match serde_json::to_value(C::default()) {
            Ok(Value::Object(m)) => m.keys().cloned().collect::<Vec<_>>().join(", "),
            _ => String::new(),
        };
        Error::invalid(format!("{kind}.{name}"), value, format!("{e}; valid keys: {keys}"))
    })
}

/// Registers one plugin. Used through the kind-specific macros below.
#[doc(hidden)]
#[macro_export]
macro_rules! __register_plugin {
    ($alias:ident, $kind:literal, $name:literal, $description:literal, $config:ty, $build:expr) => {
        $crate::inventory::submit! {
            $crate::registry::$alias {
                name: $name,
                description: $description,
                default_config: || {
                    $crate::serde_json::to_value(<$config as ::core::default::Default>::default())
                        .expect("a plugin's default config serialises to JSON")
                },
                build: |value| {
                    let config: $config = $crate::registry::parse_config($kind, $name, value)?;
                    ($build)(config)
                },
            }
        }
    };
}

/// `register_matcher!("name", "one line", ConfigType, |config: ConfigType| -> Result<Box<dyn Matcher>> { .. })`
#[macro_export]
macro_rules! register_matcher {
    ($name:literal, $description:literal, $config:ty, $build:expr) => {
        $crate::__register_plugin!(MatcherPlugin, "matcher", $name, $description, $config, $build);
    };
}

/// `register_scheduler!("name", "one line", ConfigType, |config| -> Result<Box<dyn Scheduler>>)`
#[macro_export]
macro_rules! register_scheduler {
    ($name:literal, $description:literal, $config:ty, $build:expr) => {
        $crate::__register_plugin!(SchedulerPlugin, "scheduler", $name, $description, $config, $build);
    };
}

/// `register_architecture!("name", "one line", ConfigType, |config| -> Result<Box<dyn Architecture>>)`
#[macro_export]
macro_rules! register_architecture {
    ($name:literal, $description:literal, $config:ty, $build:expr) => {
        $crate::__register_plugin!(
            ArchitecturePlugin,
            "architecture",
            $name,
            $description,
            $config,
            $build
        );
    };
}

/// `register_augmenter!("name", "one line", ConfigType, |config| -> Result<Box<dyn Augmenter>>)`
#[macro_export]
macro_rules! register_augmenter {
    ($name:literal, $description:literal, $config:ty, $build:expr) => {
        $crate::__register_plugin!(AugmenterPlugin, "augmenter", $name, $description, $config, $build);
    };
}
