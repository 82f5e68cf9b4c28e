//! The published protocols of the built-in methods, one TOML file each in `plugins/protocols/`
//! (see `cafe_framework::protocol` for the format): every setting of condensation and
//! evaluation as the reference code runs it, each value beside its reference file and line.

use cafe_framework::register_protocol;

register_protocol!("dc.toml", include_str!("../protocols/dc.toml"));
register_protocol!("dsa.toml", include_str!("../protocols/dsa.toml"));
register_protocol!("dm.toml", include_str!("../protocols/dm.toml"));
register_protocol!("cafe.toml", include_str!("../protocols/cafe.toml"));
register_protocol!("cafe-dsa.toml", include_str!("../protocols/cafe-dsa.toml"));
register_protocol!("mtt.toml", include_str!("../protocols/mtt.toml"));
register_protocol!("datm.toml", include_str!("../protocols/datm.toml"));
register_protocol!("sre2l.toml", include_str!("../protocols/sre2l.toml"));
register_protocol!("rded.toml", include_str!("../protocols/rded.toml"));
