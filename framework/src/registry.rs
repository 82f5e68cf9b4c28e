//! The plugin registry: plugins register plain data (a name, a one-line description, a default
//! config and a factory) with `inventory`, through the `register_*!` macros; lookups index
//! the entries once into sorted maps.
//!
//! `inventory` entries of a crate that nothing references are dropped by the linker
//! (CANDLE_NOTES 7): every binary and test that needs the plugins must `use cafe_plugins as _;`.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

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

/// The plugin kinds, for messages and listings.
pub trait PluginKind: 'static {
    const KIND: &'static str;
    fn entries() -> Vec<&'static Plugin<Self>>;
}

macro_rules! kind {
    ($t:ty, $name:literal, $alias:ty) => {
        impl PluginKind for $t {
            const KIND: &'static str = $name;
            fn entries() -> Vec<&'static Plugin<Self>> {
                inventory::iter::<$alias>.into_iter().collect()
            }
        }
    };
}
kind!(dyn Matcher, "matcher", MatcherPlugin);
kind!(dyn Scheduler, "scheduler", SchedulerPlugin);
kind!(dyn Architecture, "architecture", ArchitecturePlugin);
kind!(dyn Augmenter, "augmenter", AugmenterPlugin);

/// All plugins of one kind, sorted by name; a duplicate name is an error.
pub fn plugins<T: ?Sized + PluginKind>() -> Result<BTreeMap<&'static str, &'static Plugin<T>>> {
    let mut map = BTreeMap::new();
    for entry in T::entries() {
        if map.insert(entry.name, entry).is_some() {
            return Err(Error::DuplicatePlugin {
                kind: T::KIND,
                name: entry.name.to_string(),
            });
        }
    }
    Ok(map)
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
    Ok(plugins::<T>()?.into_keys().collect())
}

impl<T: ?Sized + PluginKind> Plugin<T> {
    /// The default config with `overrides` merged over it (objects merge key by key).
    pub fn resolve_config(&self, overrides: &Value) -> Value {
        let mut config = (self.default_config)();
        merge_json(&mut config, overrides);
        config
    }

    /// Builds the plugin from its defaults with `overrides` merged over them.
    pub fn instantiate(&self, overrides: &Value) -> Result<Box<T>> {
        (self.build)(&self.resolve_config(overrides))
    }
}

/// Merges `patch` into `base`: objects key by key, anything else replaced.
pub fn merge_json(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge_json(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) if !p.is_null() => *b = p.clone(),
        _ => {}
    }
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
