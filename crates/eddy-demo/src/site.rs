//! The demo origin behind `eddy up`: a handful of objects with realistic cache headers, and the
//! demo video under `/vod/`.

use crate::live::Live;
use crate::server::{Origin, Reply, Seen};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const PAGE: &str = "<!doctype html><title>Eddy demo</title><h1>Hello from the demo origin</h1>\n";

/// The demo player: hls.js or dash.js (from a public CDN, pinned by Subresource Integrity) with
/// CMCD on, for `?src=` (`/player.html?src=/vod/manifest.mpd`).
pub const PLAYER: &str = include_str!("player.html");

/// What a player page on another origin may read of a media response: the CMSD fields an edge
/// adds, and `Age` (hls.js adds it to a live playlist's age).
const EXPOSE: &str = "Age, CMSD-Static, CMSD-Dynamic";

fn etag_reply(req: &Seen, body: &'static str, etag: &str, cc: &str) -> Reply {
    if req.header("if-none-match") == Some(etag) {
        return Reply::status(304)
            .header("etag", etag)
            .header("cache-control", cc);
    }
    Reply::ok(body)
        .header("content-type", "text/html")
        .header("etag", etag)
        .header("cache-control", cc)
}

/// Start the demo origin on `addr`, serving `live` under `/live/` (503 there without one).
pub fn start(addr: SocketAddr, live: Option<Arc<Live>>) -> std::io::Result<Origin> {
    let started = SystemTime::now();
    Origin::start_on(addr, move |req: &Seen| {
        let path = req.path.split('?').next().unwrap_or("/");
        let date = httpdate::fmt_http_date(SystemTime::now());
        let reply = match path {
            "/" | "/index.html" => etag_reply(req, PAGE, "\"v1\"", "public, max-age=60"),
            "/player.html" => Reply::ok(PLAYER)
                .header("content-type", "text/html; charset=utf-8")
                .header("cache-control", "public, max-age=60"),
            "/style.css" => Reply::ok("body { font-family: sans-serif }\n")
                .header("content-type", "text/css")
                .header("cache-control", "public, max-age=3600, immutable"),
            "/news" => Reply::ok(format!("news at {date}\n"))
                .header("content-type", "text/plain")
                .header(
                    "cache-control",
                    "s-maxage=5, stale-while-revalidate=30, stale-if-error=300",
                )
                .header("surrogate-key", "news front"),
            "/api/time" => Reply::ok(format!("{date}\n")).header("cache-control", "no-store"),
            "/private" => {
                Reply::ok("your account\n").header("cache-control", "private, max-age=60")
            }
            "/lang" => {
                let lang = req.header("accept-language").unwrap_or("en");
                Reply::ok(format!("hello in {lang}\n"))
                    .header("vary", "Accept-Language")
                    .header("cache-control", "max-age=300")
            }
            "/heuristic" => Reply::ok("no explicit freshness, Last-Modified only\n").header(
                "last-modified",
                httpdate::fmt_http_date(started - Duration::from_secs(36_000)),
            ),
            "/slow.bin" => Reply::status(200)
                .slow(vec![b'e'; 8 << 20], 40, Duration::from_secs(4))
                .header("content-type", "application/octet-stream")
                .header("content-length", (8u32 << 20).to_string())
                .header("cache-control", "max-age=600"),
            // /bytes/N: N bytes, cacheable for an hour (benchmarks).
            p if p.starts_with("/bytes/") => match p["/bytes/".len()..].parse::<usize>() {
                Ok(n) if n <= 64 << 20 => Reply::ok(vec![b'b'; n])
                    .header("content-type", "application/octet-stream")
                    .header("cache-control", "public, max-age=3600"),
                _ => Reply::status(400).body("size must be 0..=67108864\n"),
            },
            p if p.starts_with("/video/seg-") && p.ends_with(".ts") => {
                Reply::ok(vec![b'v'; 256 << 10])
                    .header("content-type", "video/mp2t")
                    .header("cache-control", "public, max-age=86400")
                    .header("surrogate-key", "video show-1")
            }
            p if p.starts_with("/live/") => match &live {
                Some(live) => {
                    let query = req.path.split_once('?').map_or("", |(_, q)| q);
                    live.answer(&p["/live/".len()..], query, std::time::Instant::now())
                        .header("access-control-allow-origin", "*")
                        .header("access-control-expose-headers", EXPOSE)
                }
                None => Reply::status(503)
                    .body("the live stream could not be cut from the demo video\n"),
            },
            "/vod/long.mpd" => match crate::long::mpd() {
                Some(mpd) => vod_reply("long.mpd", mpd),
                None => Reply::status(500).body("the demo MPD could not be repeated\n"),
            },
            p if p.starts_with("/vod/long/") => {
                let name = &p["/vod/long/".len()..];
                match crate::long::segment(name) {
                    Some(seg) => vod_reply(name, seg),
                    None => Reply::status(404)
                        .body("no such segment of the long presentation\n")
                        .header("cache-control", "max-age=10"),
                }
            }
            p if p.starts_with("/vod/") => {
                let name = &p["/vod/".len()..];
                match crate::media::vod(name) {
                    Some(body) => vod_reply(name, bytes::Bytes::from_static(body)),
                    None => Reply::status(404)
                        .body("no such file in the demo video\n")
                        .header("cache-control", "max-age=10"),
                }
            }
            _ => Reply::status(404)
                .body("not found\n")
                .header("cache-control", "max-age=10"),
        };
        reply.header("date", date)
    })
}

/// A file of the demo video, `name`, answered with its type and TTL
/// (`crate::media::headers_for`), open to players on other origins, purgeable as `vod`.
fn vod_reply(name: &str, body: impl Into<bytes::Bytes>) -> Reply {
    let (ct, cc) = crate::media::headers_for(name);
    Reply::ok(body)
        .header("content-type", ct)
        .header("cache-control", cc)
        .header("access-control-allow-origin", "*")
        .header("access-control-expose-headers", EXPOSE)
        .header("surrogate-key", "vod")
}
