#![no_main]
//! The edge's stored response-head codec rejects arbitrary bytes without panicking.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = eddy_edge::storage::decode_meta(&bytes::Bytes::copy_from_slice(data));
});
