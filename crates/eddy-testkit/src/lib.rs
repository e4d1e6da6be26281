//! # eddy-testkit: helpers for tests that run real servers on 127.0.0.1
//!
//! - [`origin`]: a scriptable HTTP/1.1 origin on port 0 that records every request it gets and can
//!   stream a body slowly, fail, or answer conditionally. It lives in `eddy-demo` (the shipped
//!   binary's demo origin runs on it, and the binary must not depend on a test kit).
//! - [`pki`]: a certificate authority made at test time and the certificates it signs.
//! - [`wait_until`]: poll a condition until it holds or a deadline passes (never sleep-and-hope).
//!   (One piece of process-wide state: [`free_port`] remembers the ports it handed out.)
//! - [`free_port`]: an ephemeral loopback port for servers that must be given an address;
//!   [`free_fixed_port`] one outside the ephemeral range, for slow-starting or restarting brokers.
//!
//! Must not touch: anything outside 127.0.0.1.

pub mod alloc;
pub mod brokers;
pub mod pki;
pub use eddy_demo::server as origin;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// Reserve an ephemeral port on 127.0.0.1 and release it for a server that binds by address.
/// Never the same port twice in a row of 256 calls in one process: the kernel hands a port just
/// released out again, and a test that asks for two (an edge's listen and admin addresses) got
/// the same one twice (CI, `purge_fanout`, "edge.admin must differ from edge.listen").
pub fn free_port() -> std::io::Result<SocketAddr> {
    static GIVEN: std::sync::Mutex<std::collections::VecDeque<u16>> =
        std::sync::Mutex::new(std::collections::VecDeque::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut held = Vec::new();
    for _ in 0..64 {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let addr = l.local_addr()?;
        if !given.contains(&addr.port()) {
            given.push_back(addr.port());
            while given.len() > 256 {
                given.pop_front();
            }
            return Ok(addr);
        }
        // Keep it bound so the next bind gets another port.
        held.push(l);
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no loopback port that was not handed out already",
    ))
}

/// A free loopback port outside the kernel's ephemeral range, for a server that starts slowly or
/// restarts on the same port: no other test's port-0 socket can take it in between. Chosen at
/// random in 20000..32000 and checked free now.
pub fn free_fixed_port() -> std::io::Result<SocketAddr> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(2_654_435_761);
    let mut x = seed | 1;
    for _ in 0..200 {
        // xorshift: spread the tries over the range.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let port = 20_000 + (x % 12_000) as u16;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            return l.local_addr();
        }
    }
    Err(std::io::Error::other("no free port in 20000..32000"))
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

#[cfg(test)]
mod tests {
    #[test]
    fn free_ports_are_distinct_within_a_process() {
        let ports: std::collections::HashSet<u16> = (0..200)
            .map(|_| super::free_port().map(|a| a.port()).unwrap_or(0))
            .collect();
        assert_eq!(ports.len(), 200);
        assert!(!ports.contains(&0));
    }
}
