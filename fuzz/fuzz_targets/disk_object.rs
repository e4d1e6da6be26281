#![no_main]
//! A disk tier object file of arbitrary bytes is rejected or decoded, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = eddy_cache::disk::decode_file(bytes::Bytes::copy_from_slice(data));
});
