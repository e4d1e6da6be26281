#![no_main]
//! The raw request-head checks and the Range / Content-Range parsers never panic.
use eddy_edge::slice;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = eddy_edge::request::framing_violation(data);
    let _ = eddy_edge::request::chunked_end(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(r) = slice::parse_single_range(s) {
            let _ = slice::plan(r, 1 << 20);
        }
        let _ = slice::parse_content_range(s);
    }
});
