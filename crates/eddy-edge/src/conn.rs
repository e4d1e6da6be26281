//! Caps on viewer connections: at most `edge.max_connections` at once, and at most
//! `edge.max_client_connections` from one client address, so a slowloris or a runaway client
//! cannot hold the edge's descriptors and memory. A connection over a cap is closed at accept,
//! before a byte is read.
//!
//! Counting is lock-sharded by address (64 shards) plus one atomic for the total; a
//! [`Permit`] gives its place back when dropped, however the connection ends.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const SHARDS: usize = 64;

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `edge.max_connections`.
    Total,
    /// `edge.max_client_connections`.
    Client,
}

/// Open viewer connections, in total and per client address.
pub struct ConnLimits {
    max_total: usize,
    max_client: usize,
    total: AtomicUsize,
    clients: [Mutex<HashMap<IpAddr, usize>>; SHARDS],
}

/// One admitted connection; dropping it frees its place.
pub struct Permit {
    limits: Arc<ConnLimits>,
    ip: Option<IpAddr>,
}

impl ConnLimits {
    /// Caps of `max_total` connections and `max_client` per address.
    pub fn new(max_total: usize, max_client: usize) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            max_total,
            max_client,
            total: AtomicUsize::new(0),
            clients: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        })
    }

    fn shard(&self, ip: &IpAddr) -> &Mutex<HashMap<IpAddr, usize>> {
        let h = match ip {
            IpAddr::V4(v4) => u64::from(u32::from(*v4)),
            IpAddr::V6(v6) => {
                let b = u128::from(*v6);
                (b as u64) ^ ((b >> 64) as u64)
            }
        };
        // Fibonacci hashing spreads neighbouring addresses over the shards.
        let i = (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize;
        &self.clients[i % SHARDS]
    }

    /// Admit a connection from `ip` (unknown for a non-IP peer: only the total counts).
    pub fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Permit, Refused> {
        if self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_total).then_some(n + 1)
            })
            .is_err()
        {
            return Err(Refused::Total);
        }
        if let Some(ip) = ip {
            let mut shard = self.shard(&ip).lock();
            let n = shard.entry(ip).or_insert(0);
            if *n >= self.max_client {
                if *n == 0 {
                    shard.remove(&ip);
                }
                drop(shard);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return Err(Refused::Client);
            }
            *n += 1;
        }
        Ok(Permit {
            limits: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Connections open now from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.shard(&ip).lock().get(&ip).copied().unwrap_or(0)
    }

    /// Addresses with a connection open (the per-address table's size).
    pub fn clients(&self) -> usize {
        self.clients.iter().map(|s| s.lock().len()).sum()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut shard = self.limits.shard(&ip).lock();
            if let Some(n) = shard.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    shard.remove(&ip);
                }
            }
        }
        self.limits.total.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn caps_per_client_and_in_total() {
        let l = ConnLimits::new(5, 2);
        let a1 = l.admit(ip(1));
        let a2 = l.admit(ip(1));
        assert!(a1.is_ok() && a2.is_ok());
        assert_eq!(l.admit(ip(1)).err(), Some(Refused::Client));
        let b: Vec<_> = (0..3).map(|_| l.admit(ip(2))).collect();
        assert_eq!(b.iter().filter(|p| p.is_ok()).count(), 2);
        let c = l.admit(ip(3));
        assert!(c.is_ok());
        assert_eq!(l.open(), 5);
        assert_eq!(l.admit(ip(4)).err(), Some(Refused::Total));
        assert_eq!(l.admit(None).err(), Some(Refused::Total));
        drop(a1);
        assert_eq!(l.open_from(IpAddr::from([10, 0, 0, 1])), 1);
        assert!(l.admit(ip(1)).is_ok(), "a freed place is reused at once");
        drop((a2, b, c));
        assert_eq!(l.open(), 0);
        assert_eq!(
            l.clients(),
            0,
            "no address is remembered once its connections close"
        );
    }

    /// Many threads admit and drop at once for thousands of rounds: the counts never pass a cap
    /// and return to zero.
    #[test]
    fn racing_admissions_never_pass_a_cap_and_always_return() {
        const THREADS: usize = 8;
        const ROUNDS: usize = 2_000;
        let l = ConnLimits::new(12, 3);
        let peak_total = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (l, peak) = (l.clone(), peak_total.clone());
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for r in 0..ROUNDS {
                        let who = ip(((t + r) % 4) as u8);
                        if let Ok(p) = l.admit(who) {
                            held.push(p);
                        }
                        peak.fetch_max(l.open(), Ordering::Relaxed);
                        for n in 0..4u8 {
                            assert!(l.open_from(IpAddr::from([10, 0, 0, n])) <= 3);
                        }
                        if r % 3 == 0 {
                            held.clear();
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().is_ok());
        }
        assert!(peak_total.load(Ordering::Relaxed) <= 12);
        assert_eq!(l.open(), 0);
        assert_eq!(l.clients(), 0);
    }
}
