//! `cafe-lab list`: every registered plugin of each kind, its description and default config.

use anyhow::Result;
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

/// Prints all plugins, grouped by kind, sorted by name.
pub fn print_plugins() -> Result<()> {
    print_kind::<dyn Matcher>("matchers (--matcher)")?;
    print_kind::<dyn Scheduler>("schedulers (--scheduler)")?;
    print_kind::<dyn Architecture>("architectures (--arch, --eval-archs)")?;
    print_kind::<dyn Augmenter>("augmenters (--augment, --eval-augment)")?;
    Ok(())
}
