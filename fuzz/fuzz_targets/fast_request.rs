#![no_main]
//! The hit fast path's view of a request never panics, and what it accepts has a key URL.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((url, _head)) = eddy_edge::fast::plan(data, 65_536) {
        assert!(url.contains('/'));
    }
});
