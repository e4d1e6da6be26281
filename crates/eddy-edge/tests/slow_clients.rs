//! Issue 11 item 8: slow and misbehaving clients are bounded. A request head has a deadline for
//! the whole of it, an idle keep-alive connection is closed, and connections are capped per
//! client address and in total; each closure is counted by reason.
#![allow(clippy::unwrap_used)]

mod common;

use common::raw::{RawConn, get};
use common::{Rig, counting, start_with};
use std::io::Write;
use std::time::{Duration, Instant};

fn rig(toml: &str) -> Rig {
    start_with(counting("max-age=60"), |_| {}, &format!("[edge]\n{toml}"))
}

fn closed(rig: &Rig, reason: &str) -> u64 {
    rig.metric(&format!(
        "eddy_connections_closed_total{{reason=\"{reason}\"}}"
    ))
}

#[test]
fn a_request_head_must_arrive_whole_within_its_deadline() {
    let rig = rig("head_timeout_ms = 600\nkeepalive_timeout_ms = 60000\n");
    // A slowloris: one byte every 100 ms, a head that never ends.
    let start = Instant::now();
    let mut slow = RawConn::open(rig.listen);
    let trickle = std::thread::spawn({
        let mut s = slow.s.try_clone().unwrap();
        move || {
            for b in b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                if s.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    let r = slow.read(false).expect("a 408 before the close");
    assert_eq!(r.status, 408);
    assert!(slow.closed_within(Duration::from_secs(2)));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(2),
        "closed after {took:?}"
    );
    trickle.join().unwrap();
    // A connection that never sends a byte is closed too, without an answer.
    let mut silent = RawConn::open(rig.listen);
    assert!(silent.closed_within(Duration::from_secs(3)));
    assert_eq!(
        rig.metric_becomes("eddy_connections_closed_total{reason=\"head_timeout\"}", 2),
        2
    );
    // A client that sends its head promptly is served as before.
    let mut ok = RawConn::open(rig.listen);
    ok.send(&get("/", "h"));
    assert_eq!(ok.read(false).map(|r| r.status), Some(200));
}

#[test]
fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let rig = rig("head_timeout_ms = 10000\nkeepalive_timeout_ms = 500\n");
    let mut idle = RawConn::open(rig.listen);
    idle.send(&get("/a", "h"));
    assert_eq!(idle.read(false).map(|r| r.status), Some(200));
    let t = Instant::now();
    assert!(idle.closed_within(Duration::from_secs(3)));
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        rig.metric_becomes("eddy_connections_closed_total{reason=\"idle_timeout\"}", 1),
        1
    );
    // Requests every 200 ms keep a connection open past the idle timeout, through the fast
    // path and the full proxy alike.
    let mut busy = RawConn::open(rig.listen);
    for i in 0..8 {
        let path = if i % 2 == 0 { "/a" } else { "/b" };
        busy.send(&get(path, "h"));
        assert_eq!(busy.read(false).map(|r| r.status), Some(200), "request {i}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(closed(&rig, "idle_timeout"), 1);
}

/// A connection from `ip` (any 127/8 address reaches the edge) to the edge.
fn connect_from(ip: [u8; 4], rig: &Rig) -> RawConn {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt
        .block_on(async {
            let s = tokio::net::TcpSocket::new_v4()?;
            s.bind(std::net::SocketAddr::from((ip, 0)))?;
            s.connect(rig.listen).await
        })
        .unwrap();
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    RawConn::wrap(s)
}

#[test]
fn connections_are_capped_per_client_address_and_in_total() {
    let rig = rig("max_connections = 3\nmax_client_connections = 2\n");
    // Addresses nothing else in the test uses (the rig's own probes come from 127.0.0.1).
    let mut a1 = connect_from([127, 0, 0, 4], &rig);
    let mut a2 = connect_from([127, 0, 0, 4], &rig);
    for c in [&mut a1, &mut a2] {
        c.send(&get("/", "h"));
        assert_eq!(c.read(false).map(|r| r.status), Some(200));
    }
    // A third from the same address is closed at accept.
    let mut a3 = connect_from([127, 0, 0, 4], &rig);
    a3.send(&get("/", "h"));
    assert!(a3.read(false).is_none(), "over the per-client cap");
    assert_eq!(
        rig.metric_becomes(
            "eddy_connections_closed_total{reason=\"max_client_connections\"}",
            1
        ),
        1
    );
    // Another address gets the last place in total; a fourth connection is over the total cap.
    let mut b1 = connect_from([127, 0, 0, 5], &rig);
    b1.send(&get("/", "h"));
    assert_eq!(b1.read(false).map(|r| r.status), Some(200));
    let mut c1 = connect_from([127, 0, 0, 6], &rig);
    c1.send(&get("/", "h"));
    assert!(c1.read(false).is_none(), "over the total cap");
    assert_eq!(
        rig.metric_becomes(
            "eddy_connections_closed_total{reason=\"max_connections\"}",
            1
        ),
        1
    );
    assert_eq!(rig.metric("eddy_connections_open"), 3);
    // A closed connection frees its place at once.
    drop(a1);
    assert!(eddy_testkit::wait_until(Duration::from_secs(5), || {
        let mut again = connect_from([127, 0, 0, 4], &rig);
        again.send(&get("/", "h"));
        again.read(false).is_some_and(|r| r.status == 200)
    }));
}
