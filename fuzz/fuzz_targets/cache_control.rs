#![no_main]
//! Cache-Control / CDN-Cache-Control parsing and the RFC 9111 decision never panic.
use eddy_cache::rfc9111::{Directives, Limits, ResponseFacts, decide};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = Directives::parse_lenient(s);
    let _ = Directives::parse_strict(s);
    let mut parts = s.splitn(4, '\n');
    let (cc, cdn, age, exp) = (parts.next(), parts.next(), parts.next(), parts.next());
    let facts = ResponseFacts {
        status: 200,
        cache_control: cc,
        cdn_cache_control: cdn,
        age,
        expires: exp,
        date: exp,
        last_modified: age,
        ..Default::default()
    };
    let _ = decide(&facts, &Limits::default(), std::time::SystemTime::now());
});
