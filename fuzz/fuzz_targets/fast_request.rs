#![no_main]
//! The hit fast path's request judge never panics, and what it accepts is a whole request head
//! inside the bytes it was given.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(plan) = eddy_edge::fast::plan(data, 65_536) {
        assert!(plan.len <= data.len());
        assert!(data[..plan.len].ends_with(b"\n"));
        assert!(!plan.url.is_empty());
    }
});
