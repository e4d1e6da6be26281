#![no_main]
//! Any TOML text yields a Config or a ConfigError, never a panic.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let name = Path::new("fuzz.toml");
    if let Ok(file) = eddy_config::parse(s, name) {
        let _ = eddy_config::validate(file, &eddy_config::Overrides::default(), name);
    }
});
