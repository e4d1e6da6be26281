#![no_main]
//! The gate's judge of a request head (strict parse, Host, target forms, framing) never panics;
//! an accepted head lies inside the bytes given, its request ends inside them, and its URL is
//! already canonical (normalising it again changes nothing).
use eddy_edge::request::{Head, judge, request_end};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Head::Complete(r) = judge(data, 65_536, |_| Default::default()) {
        assert!(r.head_len <= data.len());
        if let Some(end) = request_end(&r, data) {
            assert!(end >= r.head_len && end <= data.len());
        }
        if let Some(url) = &r.url {
            let again = eddy_url::Canonical::new(
                url.host().as_bytes(),
                url.path().as_bytes(),
                eddy_url::HTTP_PORT,
                |_| Default::default(),
            );
            assert_eq!(again.as_ref(), Ok(url));
        }
    }
});
