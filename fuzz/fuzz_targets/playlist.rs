#![no_main]
//! HLS playlists from an origin never panic the edge: a media playlist that reads writes back to
//! one that reads the same; a capped multivariant playlist still reads and keeps a variant;
//! delivery directives read or refuse; a capped MPD reads.
use eddy_streaming::hls::{self, directives::Directives, media::MediaPlaylist, multivariant};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hls::kind(data);
    if let Ok(p) = MediaPlaylist::parse(data) {
        let again = MediaPlaylist::parse(p.write().as_bytes()).expect("what we write reads");
        assert_eq!(again.next_msn(), p.next_msn());
        if let Ok(d) = Directives::from_query("_HLS_msn=3&_HLS_part=1") {
            let _ = d.check(&p);
        }
    }
    if let Ok(Some(capped)) = multivariant::cap(data, 1_000_000) {
        let v = multivariant::variants(&capped).expect("a capped playlist reads");
        assert!(v.iter().any(|v| !v.i_frame));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Directives::from_query(s);
    }
    if let Ok(m) = eddy_streaming::dash::Mpd::parse(data)
        && let Ok(Some(c)) = m.cap(1_000_000)
    {
        eddy_streaming::dash::Mpd::parse(c.as_bytes()).expect("a capped MPD reads");
    }
});
