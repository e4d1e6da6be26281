#![no_main]
//! CMCD from queries, headers and event-report bodies never panics; the next objects a request
//! names resolve to canonical paths on the same site; CMSD written for any server id parses back.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = eddy_url::PathOptions::default();
    let _ = eddy_streaming::cmcd::reports(data);
    if let Ok(c) = eddy_streaming::cmcd::Cmcd::parse(data) {
        for p in c.next_paths("/v/720p/seg_1.m4s", opts) {
            assert!(p.starts_with('/') && !p.starts_with("//"));
            assert_eq!(eddy_url::path(p.as_bytes(), opts).as_deref(), Ok(p.as_str()));
        }
    }
    let (name, value) = data.split_at(data.len() / 2);
    if let Ok(name) = std::str::from_utf8(name) {
        let _ = eddy_streaming::cmcd::Cmcd::from_headers([(name, value), ("CMCD-Request", value)]);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = eddy_streaming::cmcd::Cmcd::from_query(s);
        let d = eddy_streaming::cmsd::Dynamic {
            server: s.to_owned(),
            mb: Some(1),
            ..Default::default()
        };
        if let Ok(v) = d.append_to(Some(value)) {
            assert!(sfv::Parser::new(v.as_bytes()).parse_list_with_visitor(sfv::visitor::Ignored).is_ok());
        }
    }
});
