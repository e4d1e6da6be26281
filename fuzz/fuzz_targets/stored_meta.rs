#![no_main]
//! The edge's stored response-head codec rejects arbitrary bytes without panicking, and the
//! in-place view the hit fast path reads agrees with the decoder on what is readable.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = eddy_edge::storage::decode_meta(&bytes::Bytes::copy_from_slice(data));
    if let Some(view) = eddy_edge::storage::HeadView::parse(data) {
        let fields = view.headers().count();
        if let Ok(meta) = decoded {
            assert_eq!(meta.response_header().status.as_u16(), view.status);
            assert_eq!(meta.headers().len(), fields);
        }
    }
});
