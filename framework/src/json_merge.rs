//! Merging JSON settings layer over layer: the one rule behind run configurations, protocol
//! variants, plugin configs and `experts` settings. Objects merge key by key; a plugin named
//! anew drops the previous plugin's keys, which would not fit it; `"matcher": "gradient"` is
//! shorthand for `"matcher": {"name": "gradient"}`.

use serde_json::{Map, Value};

/// The keys whose value names a plugin (`{"name": .., config keys ..}`), at the top level of
/// a run's or an `experts` run's settings; `eval.augment` is one too.
const PLUGIN_KEYS: [&str; 4] = ["matcher", "scheduler", "arch", "augment"];

/// Merges `patch` into `base`: objects key by key, anything else replaced (a null in `patch`
/// changes nothing).
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

/// Merges the settings layer `patch` over `base`, plugin-aware (see the module header).
pub fn merge_layer(base: &mut Value, patch: &Value) {
    let mut patch = patch.clone();
    normalise_plugin_shorthand(&mut patch);
    if let (Value::Object(base), Value::Object(p)) = (&mut *base, &patch) {
        for key in PLUGIN_KEYS {
            drop_config_of_renamed_plugin(base, p, key);
        }
        if let (Some(Value::Object(be)), Some(Value::Object(pe))) = (base.get_mut("eval"), p.get("eval")) {
            drop_config_of_renamed_plugin(be, pe, "augment");
        }
    }
    merge_json(base, &patch);
}

/// Before `patch` names another plugin under `key` than `base` does, forgets base's config keys.
fn drop_config_of_renamed_plugin(base: &mut Map<String, Value>, patch: &Map<String, Value>, key: &str) {
    let new_name = patch.get(key).and_then(|v| v.get("name")).and_then(Value::as_str);
    let old_name = base.get(key).and_then(|v| v.get("name")).and_then(Value::as_str);
    if let (Some(new), Some(old)) = (new_name, old_name) {
        if !new.eq_ignore_ascii_case(old) {
            base.insert(key.into(), serde_json::json!({ "name": new }));
        }
    }
}

/// `"matcher": "gradient"` is shorthand for `"matcher": {"name": "gradient"}` (also
/// `eval.augment`).
pub fn normalise_plugin_shorthand(patch: &mut Value) {
    let expand = |m: &mut Map<String, Value>, key: &str| {
        if let Some(Value::String(name)) = m.get(key) {
            let name = name.clone();
            m.insert(key.into(), serde_json::json!({ "name": name }));
        }
    };
    if let Value::Object(m) = patch {
        for key in PLUGIN_KEYS {
            expand(m, key);
        }
        if let Some(Value::Object(e)) = m.get_mut("eval") {
            expand(e, "augment");
        }
    }
}

/// `{"name": name}` with `config`'s keys merged in: a plugin choice written out in full.
pub fn with_name(name: &str, config: &Value) -> Value {
    let mut v = serde_json::json!({ "name": name });
    merge_json(&mut v, config);
    v
}
