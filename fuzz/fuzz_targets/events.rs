#![no_main]
//! Any bytes as an event: decoding never panics; an interaction or a pre-warm hint that decodes
//! holds its bounds (ids, regions, URL count, canonical URLs) and survives a round trip.
use eddy_events::{Event, MAX_ITEM_BYTES, MAX_PREWARM_URLS, MAX_REGION_BYTES, MAX_VIEWER_BYTES};
use libfuzzer_sys::fuzz_target;

fn canonical(u: &str) -> bool {
    eddy_events::object_url(u).as_deref() == Ok(u)
}

fuzz_target!(|data: &[u8]| {
    let Ok((cloud, ev)) = Event::decode(data) else {
        return;
    };
    match &ev {
        Event::Interaction(i) => {
            assert!(!i.viewer.is_empty() && i.viewer.len() <= MAX_VIEWER_BYTES);
            assert!(!i.item.is_empty() && i.item.len() <= MAX_ITEM_BYTES);
            assert!(i.region.as_ref().is_none_or(|r| r.len() <= MAX_REGION_BYTES));
            assert!(i.url.as_deref().is_none_or(canonical));
        }
        Event::Prewarm(p) => {
            assert!(!p.urls.is_empty() && p.urls.len() <= MAX_PREWARM_URLS);
            assert!(p.urls.iter().all(|u| canonical(u)));
            assert!(p.forecast.is_finite() && p.forecast >= 0.0);
        }
        _ => return,
    }
    let again = ev.to_cloud(cloud.id.clone(), cloud.source.clone());
    let (_, back) = Event::decode(&again.encode()).expect("a decoded event encodes and decodes");
    assert_eq!(back, ev);
});
