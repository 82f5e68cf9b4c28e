//! Inputs that made a parser of untrusted input panic or recurse without bound before it was
//! fixed, found while fuzzing (`fuzz/`, `tests/fuzz_smoke.rs`); each stays refused with an
//! error. The tensor-file ones are in `tensor_file.rs`.

use cafe_framework::config::ConfigBuilder;
use cafe_framework::protocol::{Protocol, Variant};
use cafe_framework::Error;
use serde_json::json;

const HEAD: &str = "name = \"x\"\ndescription = \"\"\npaper = \"\"\nreference = \"\"\n";

/// Before: `settings_for` indexed the settings with `value["protocol"]`, which panics on a
/// JSON number, and a protocol file's `settings = 5` parsed.
#[test]
fn protocol_settings_that_are_not_a_table() {
    let e = Protocol::parse("x.toml", &format!("{HEAD}settings = 5\n")).unwrap_err();
    assert!(
        e.to_string()
            .contains("x.toml: [settings] must be a table of config keys, found 5"),
        "{e}"
    );
    let e = Protocol::parse("x.toml", &format!("{HEAD}[settings]\n[[when]]\nsettings = [1]\n")).unwrap_err();
    assert!(
        e.to_string().contains("the settings of [[when]] 1 must be a table"),
        "{e}"
    );
    // A Protocol built by hand with such settings: no panic either.
    let protocol = Protocol {
        name: "x".into(),
        description: String::new(),
        paper: String::new(),
        reference: String::new(),
        default_for: None,
        settings: json!(5),
        when: vec![Variant {
            dataset: None,
            ipc: None,
            settings: json!("not a table"),
        }],
    };
    assert_eq!(protocol.settings_for("mnist", 1), json!({"protocol": "x"}));
}

/// Before: `--set a.a.a...=1` with a path of 100 000 keys nested the patch as deep, and
/// merging (and dropping) it recursed once per key until the stack ran out.
#[test]
fn a_set_path_of_thousands_of_keys() {
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            let assignment = format!("{}a=1", "a.".repeat(100_000));
            match ConfigBuilder::default().set(&assignment) {
                Err(Error::InvalidSetting { setting, reason, .. }) => {
                    assert_eq!(setting, "--set");
                    assert!(reason.contains("100001 keys") && reason.contains("16 deep"), "{reason}");
                }
                other => panic!("expected InvalidSetting, got {:?}", other.map(|_| ())),
            }
            // The deepest real settings still go through.
            ConfigBuilder::default().set("eval.augment.strategy=crop").unwrap();
        })
        .unwrap()
        .join()
        .unwrap();
}
