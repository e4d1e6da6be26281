#![no_main]
//! Any bytes as a simulator trace, binary (`oracleGeneral`) or CSV, read or fail with an error
//! naming a record, never a panic; a trace that reads has every `next` pointing forward to a
//! request for the same object.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = eddy_sim::trace::parse_oracle(Path::new("fuzz.bin"), data) {
        for (i, r) in t.iter().enumerate() {
            if let Some(n) = r.next {
                assert!(n as usize > i && t[n as usize].id == r.id);
            }
        }
    }
    let _ = eddy_sim::trace::parse_csv(Path::new("fuzz.csv"), &String::from_utf8_lossy(data));
});
