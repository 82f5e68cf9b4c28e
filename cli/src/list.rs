//! `cafe-lab list`: every registered plugin of each kind, its description and default config.

use anyhow::Result;
use cafe_framework::protocol::protocols;
use cafe_framework::registry::{plugins, Plugin, PluginKind};
use cafe_framework::traits::{
    architecture::Architecture, augmenter::Augmenter, matcher::Matcher, scheduler::Scheduler,
};

fn print_kind<T: ?Sized + PluginKind>(title: &str) -> Result<()> {
    println!("{title}:");
    let all = plugins::<T>()?;
    let width = all.keys().map(|k| k.len()).max().unwrap_or(0);
    for (name, plugin) in all {
        let p: &Plugin<T> = plugin;
        let config = (p.default_config)();
        let config = if config.as_object().is_some_and(|m| m.is_empty()) {
            String::new()
        } else {
            format!("  {config}")
        };
        println!("  {name:<width$}  {}{config}", p.description);
    }
    println!();
    Ok(())
}

/// The published protocols (`--protocol`), with the matcher each is the default of.
fn print_protocols() -> Result<()> {
    println!("protocols (--protocol; `none`: cafe-lab's built-in defaults):");
    let all = protocols()?;
    let width = all.keys().map(|k| k.len()).max().unwrap_or(0);
    for (name, p) in all {
        let default = match &p.default_for {
            Some(m) => format!(" [default for --matcher {m}]"),
            None => String::new(),
        };
        println!("  {name:<width$}  {}{default}", p.description);
        println!("  {:<width$}  reference: {}", "", p.reference);
    }
    println!();
    Ok(())
}

/// Prints all plugins, grouped by kind, sorted by name, then the protocols.
pub fn print_plugins() -> Result<()> {
    print_kind::<dyn Matcher>("matchers (--matcher)")?;
    print_kind::<dyn Scheduler>("schedulers (--scheduler)")?;
    print_kind::<dyn Architecture>("architectures (--arch, --eval-archs)")?;
    print_kind::<dyn Augmenter>("augmenters (--augment, --eval-augment)")?;
    print_protocols()
}
