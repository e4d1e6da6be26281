//! CMCD v2 event reports (CTA-5004-B event mode): players that send their telemetry as reports
//! (`eventTargets` in hls.js and dash.js) `POST` them to a path on the edge, and each report
//! becomes a QoE sample like the CMCD of a request ([`crate::qoe`]).
//!
//! The path is `[streaming] cmcd_events` (default `/_eddy/cmcd`) on every site, taken by an edge
//! that reads telemetry (a bus to publish QoE on, prefetch or the guard). The body is
//! `application/cmcd`: one dictionary per line ([`eddy_streaming::cmcd::reports`]), at most
//! [`MAX_REPORT_BODY`] bytes and [`eddy_streaming::cmcd::MAX_REPORTS`] lines, read within
//! [`READ_WITHIN`]. Answers:
//! - `204` once every report was queued (a full queue drops them, counted as for requests);
//! - `400` when a line does not read (naming it; nothing of the body is taken), counted as
//!   `eddy_edge_qoe_samples_total{what="malformed"}` and logged at most once a second;
//! - `413` past the size, `415` for another content type, `408` for a body that does not
//!   arrive in time, `405` for a method other than `POST` and `OPTIONS`;
//! - `OPTIONS` is a CORS preflight (a player page on another origin posts with a content type
//!   that needs one): `204` allowing `POST` with `Content-Type` from any origin.
//!
//! Every answer carries `Access-Control-Allow-Origin: *` and `Cache-Control: no-store`; after
//! one whose body was not read (405, 408, 413, 415) the connection closes.
//! Reports say what happened, not what comes next: they never drive prefetch.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use eddy_streaming::cmcd::{self, Cmcd, MAX_REPORT_BODY};
use http::header;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use crate::qoe::{Qoe, Raw};

/// Longest a report body may take to arrive.
pub const READ_WITHIN: Duration = Duration::from_secs(5);

/// The content type of a report body.
pub const CONTENT_TYPE: &str = "application/cmcd";

/// Whether canonical `url` (`host/path?query`) is the reports path `path`.
pub fn is_target(url: &str, path: &str) -> bool {
    let url = crate::qoe::without_query(url);
    url.find('/').is_some_and(|i| &url[i..] == path)
}

/// Answer a request to the reports path of canonical `url`; the status sent.
pub async fn serve(
    session: &mut Session,
    qoe: &Qoe,
    config: &eddy_config::Config,
    url: &str,
) -> pingora_error::Result<u16> {
    let method = session.req_header().method.clone();
    if method == http::Method::OPTIONS {
        answer(
            session,
            204,
            "",
            &[
                ("access-control-allow-methods", "POST, OPTIONS"),
                ("access-control-allow-headers", "content-type"),
                ("access-control-max-age", "86400"),
            ],
        )
        .await?;
        return Ok(204);
    }
    if method != http::Method::POST {
        let why = format!(
            "{} takes CMCD event reports by POST (or an OPTIONS preflight), not {method}",
            crate::qoe::without_query(url)
        );
        // Its body, if any, is not read: the connection ends with the answer.
        session.set_keepalive(None);
        answer(session, 405, &why, &[("allow", "POST, OPTIONS")]).await?;
        return Ok(405);
    }
    let req = session.req_header();
    let kind = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim());
    if !kind.is_some_and(|k| k.eq_ignore_ascii_case(CONTENT_TYPE)) {
        let why = format!(
            "CMCD event reports are sent as {CONTENT_TYPE}, one report per line; this body is {}",
            kind.unwrap_or("of no stated type")
        );
        session.set_keepalive(None);
        answer(session, 415, &why, &[]).await?;
        return Ok(415);
    }
    let declared = req
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REPORT_BODY as u64) {
        return too_large(session).await;
    }
    let body = match tokio::time::timeout(READ_WITHIN, read_body(session)).await {
        Ok(Ok(Some(body))) => body,
        Ok(Ok(None)) => return too_large(session).await,
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            session.set_keepalive(None);
            let why = format!("the report body did not arrive within {READ_WITHIN:?}");
            answer(session, 408, &why, &[]).await?;
            return Ok(408);
        }
    };
    match cmcd::reports(&body) {
        Ok(reports) => {
            let target = crate::qoe::without_query(url);
            let at = Instant::now();
            for c in reports {
                qoe.offer(Raw {
                    url: reported_url(&c, |h| config.path_options(h))
                        .unwrap_or_else(|| target.to_string()),
                    query: None,
                    fields: Vec::new(),
                    at,
                    // Reports do not drive the guard: no network to judge.
                    peer: None,
                    report: Some(Box::new(c)),
                });
            }
            answer(session, 204, "", &[]).await?;
            Ok(204)
        }
        Err(e) => {
            qoe.malformed(url, &e.to_string());
            let why = format!("CMCD event reports not taken: {e}");
            answer(session, 400, &why, &[]).await?;
            Ok(400)
        }
    }
}

async fn too_large(session: &mut Session) -> pingora_error::Result<u16> {
    session.set_keepalive(None);
    let why = format!(
        "a CMCD event report body is at most {MAX_REPORT_BODY} bytes; send fewer reports at a time"
    );
    answer(session, 413, &why, &[]).await?;
    Ok(413)
}

/// The whole request body; `None` past [`MAX_REPORT_BODY`].
async fn read_body(session: &mut Session) -> pingora_error::Result<Option<Bytes>> {
    let mut body = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > MAX_REPORT_BODY {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

/// `host/path` of the object a response report (`e=rr`) is about, when it names an
/// `http(s)` URL that reads, in the form cache keys have (the one normaliser, with the site's
/// options).
fn reported_url<'a>(
    c: &Cmcd,
    opts: impl FnOnce(&str) -> eddy_url::PathOptions<'a>,
) -> Option<String> {
    let raw = c.url.as_deref()?;
    let scheme = raw.split_once("://")?.0;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let url = eddy_url::content_url(raw, opts).ok()?;
    Some(crate::qoe::without_query(&url).to_string())
}

/// An answer with a JSON error (`why`, when not empty), CORS open to every origin.
async fn answer(
    session: &mut Session,
    status: u16,
    why: &str,
    extra: &[(&'static str, &str)],
) -> pingora_error::Result<()> {
    let body = if why.is_empty() {
        String::new()
    } else {
        serde_json::json!({ "error": why }).to_string() + "\n"
    };
    let mut resp = ResponseHeader::build(status, Some(4 + extra.len()))?;
    resp.insert_header("access-control-allow-origin", "*")?;
    for (k, v) in extra {
        resp.insert_header(*k, *v)?;
    }
    if !body.is_empty() {
        resp.insert_header(header::CONTENT_TYPE, "application/json")?;
    }
    if status != 204 {
        resp.insert_header(header::CONTENT_LENGTH, body.len())?;
    }
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    session
        .write_response_header(Box::new(resp), body.is_empty())
        .await?;
    if !body.is_empty() {
        session
            .write_response_body(Some(Bytes::from(body)), true)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_one_path_on_any_site() {
        assert!(is_target("v.test/_eddy/cmcd", "/_eddy/cmcd"));
        assert!(is_target("v.test:8080/_eddy/cmcd?x=1", "/_eddy/cmcd"));
        assert!(!is_target("v.test/_eddy/cmcd/x", "/_eddy/cmcd"));
        assert!(!is_target("v.test/a/_eddy/cmcd", "/_eddy/cmcd"));
    }

    #[test]
    fn a_response_report_names_its_object() {
        let c = |url: &str| Cmcd {
            url: Some(url.to_string()),
            ..Cmcd::default()
        };
        let r = |url: &str| reported_url(&c(url), |_| eddy_url::PathOptions::default());
        assert_eq!(
            r("http://V.test/a/./seg_1.m4s?CMCD=x").as_deref(),
            Some("v.test/a/seg_1.m4s")
        );
        assert_eq!(r("/relative/seg.m4s"), None);
        assert_eq!(r("v.test/relative/seg.m4s"), None);
        assert_eq!(r("http://user@v.test/x"), None);
        assert_eq!(
            reported_url(&Cmcd::default(), |_| eddy_url::PathOptions::default()),
            None
        );
    }
}
