//! # eddy-demo: the origin behind `eddy up`
//!
//! - [`server`]: a scriptable HTTP/1.1 origin (hyper) that records every request, can stream a
//!   body slowly, fail or answer conditionally. The demo site runs on it, and the test kit
//!   re-exports it for every test that needs an origin on 127.0.0.1.
//! - [`site`]: the demo site: pages with realistic cache headers (`/`, `/news`, `/api/time`,
//!   `/bytes/N` for benchmarks) and a 12 s video (`/vod/master.m3u8`, `/vod/manifest.mpd`).
//! - [`live`]: a live LL-HLS stream cut from that video on a clock (`/live/master.m3u8`), with
//!   blocking playlist reload, preload hints and delta updates; [`announce`] puts each new part
//!   on the bus as a `dev.eddy.segment.published.v1` event.
//! - [`media`]: that video, compiled into the binary from `media/vod` (made by
//!   `scripts/make-demo-media.sh`), so `eddy up` serves video with no ffmpeg installed.
//!
//! Must not touch: the edge, the cache or the bus. This crate is what sits behind an edge.

pub mod announce;
pub mod live;
pub mod long;
pub mod media;
pub mod server;
pub mod site;
