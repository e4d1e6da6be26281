#![no_main]
//! The canonical-URL normaliser never panics, its output is ASCII without controls, and it is
//! idempotent: a canonical URL normalises to itself (one key per resource).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let merge = data.first().is_some_and(|b| b & 1 == 1);
    let drop = [String::from("sid")];
    let opts = eddy_url::PathOptions {
        merge_slashes: merge,
        drop_params: if data.first().is_some_and(|b| b & 2 == 2) { &drop } else { &[] },
    };
    if let Ok(p) = eddy_url::path(data, opts) {
        assert!(p.bytes().all(|b| b > 0x20 && b < 0x7f));
        assert_eq!(eddy_url::path(p.as_bytes(), opts).as_deref(), Ok(p.as_str()));
    }
    let _ = eddy_url::host(data, eddy_url::HTTP_PORT);
    let _ = eddy_url::target(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(u) = eddy_url::content_url(s, |_| opts) {
            assert_eq!(eddy_url::content_url(&u, |_| opts).as_deref(), Ok(u.as_str()));
        }
        let _ = eddy_events::PurgeTarget::prefix(s);
        let _ = eddy_events::PurgeTarget::key(s);
    }
});
