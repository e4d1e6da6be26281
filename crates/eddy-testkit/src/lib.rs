//! # eddy-testkit: helpers for tests that run real servers on 127.0.0.1
//!
//! - [`origin`]: a scriptable HTTP/1.1 origin on port 0 that records every request it gets and can
//!   stream a body slowly, fail, or answer conditionally. Also powers `eddy up`'s demo origin.
//! - [`wait_until`]: poll a condition until it holds or a deadline passes (never sleep-and-hope).
//! - [`free_port`]: an ephemeral loopback port for servers that must be given an address.
//!
//! Must not touch: anything outside 127.0.0.1.

pub mod alloc;
pub mod brokers;
pub mod origin;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// Reserve an ephemeral port on 127.0.0.1 and release it for a server that binds by address.
pub fn free_port() -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    l.local_addr()
}

/// Poll `cond` every few milliseconds until it returns true or `timeout` passes. Returns whether it
/// held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Wait until a TCP connect to `addr` succeeds (a server is listening), up to `timeout`.
pub fn wait_for_listener(addr: SocketAddr, timeout: Duration) -> bool {
    wait_until(timeout, || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
    })
}
