#![no_main]
//! Any text as an `eddy sim --capacity` spec against any working set: a sorted, deduplicated
//! list of non-zero capacities, or an error that quotes the spec; never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let mut ws = [0u8; 8];
    ws.copy_from_slice(&data[..8]);
    let working_set = u64::from_le_bytes(ws);
    let spec = String::from_utf8_lossy(&data[8..]);
    match eddy_sim::sweep::capacities(&spec, working_set) {
        Ok(c) => {
            assert!(!c.is_empty() && c.iter().all(|&v| v > 0));
            assert!(c.windows(2).all(|w| w[0] < w[1]));
        }
        Err(e) => assert!(e.to_string().contains("capacity")),
    }
});
