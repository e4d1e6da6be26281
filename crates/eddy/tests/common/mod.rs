//! What the `eddy` binary's tests share: the binary and a child process killed on drop.
#![allow(dead_code)] // not every test binary uses every helper

use std::process::Child;

/// The `eddy` binary under test.
pub const EDDY: &str = env!("CARGO_BIN_EXE_eddy");

/// A child process killed and reaped when dropped, so a failed test leaves nothing running.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub mod browser;
