//! What the edge tells players about itself (CTA-5006 CMSD): one `CMSD-Dynamic` member, written
//! on every response to a request that carried CMCD, fast path and full proxy alike.
//!
//! The member names this hop (`"<edge id>"`). A second `CMSD-Dynamic` field line is how this hop
//! appends its member to the ones the origin or a shield sent: RFC 9110 §5.3 reads repeated
//! field lines as one comma-separated List, so the player sees `"origin", "edge-1"`, the nearest
//! hop last, as CTA-5006 asks, and the stored upstream value is never rewritten.

use eddy_streaming::cmsd::Dynamic;

/// This edge's `CMSD-Dynamic` member, ready to write.
#[derive(Debug, Clone)]
pub struct Hop {
    id: String,
    value: http::HeaderValue,
    /// `CMSD-Dynamic: <value>\r\n`, as the fast path writes it uncapped.
    line: Box<[u8]>,
}

impl Hop {
    /// The member for the edge `id`; `None` (with a warning) for an id CMSD cannot carry, which
    /// the configuration already refuses.
    pub fn new(id: &str) -> Option<Hop> {
        let member = Dynamic {
            server: id.to_string(),
            ..Dynamic::default()
        };
        let v = match member.header_value() {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(edge = id, error = %e, "no CMSD-Dynamic from this edge");
                return None;
            }
        };
        let value = http::HeaderValue::from_str(&v).ok()?;
        let line = format!("CMSD-Dynamic: {v}\r\n")
            .into_bytes()
            .into_boxed_slice();
        Some(Hop {
            id: id.to_string(),
            value,
            line,
        })
    }

    /// The member with the quality guard's cap as `mb` (max suggested bitrate, kbit/s), for
    /// the full proxy; the plain member when there is no cap.
    pub fn value_with_cap(&self, mb: Option<u32>) -> http::HeaderValue {
        let Some(mb) = mb else {
            return self.value.clone();
        };
        let member = Dynamic {
            server: self.id.clone(),
            mb: Some(mb),
            ..Dynamic::default()
        };
        member
            .header_value()
            .ok()
            .and_then(|v| http::HeaderValue::from_str(&v).ok())
            .unwrap_or_else(|| self.value.clone())
    }

    /// The field value, for the full proxy.
    pub fn value(&self) -> &http::HeaderValue {
        &self.value
    }

    /// Append the whole field line with its CRLF to `out`, with the quality guard's cap as
    /// `mb` when there is one (the fast path's [`Hop::value_with_cap`]).
    pub fn write_line(&self, mb: Option<u32>, out: &mut Vec<u8>) {
        if mb.is_none() {
            out.extend_from_slice(&self.line);
            return;
        }
        out.extend_from_slice(b"CMSD-Dynamic: ");
        out.extend_from_slice(self.value_with_cap(mb).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Whether a request carries player telemetry: a `CMCD` query parameter or a `CMCD-*` field.
pub fn carries_cmcd<'a>(
    query: Option<&str>,
    mut names: impl Iterator<Item = &'a http::HeaderName>,
) -> bool {
    query.is_some_and(|q| q.split('&').any(|p| p.starts_with("CMCD=")))
        || names.any(|n| n.as_str().starts_with("cmcd-"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_member_names_the_edge_as_an_rfc8941_string() {
        let h = Hop::new("edge-1").unwrap();
        assert_eq!(h.value(), "\"edge-1\"");
        let mut line = Vec::new();
        h.write_line(None, &mut line);
        assert_eq!(line, b"CMSD-Dynamic: \"edge-1\"\r\n");
        // With the quality guard's cap: the same member as the full proxy's value.
        line.clear();
        h.write_line(Some(300), &mut line);
        assert_eq!(line, b"CMSD-Dynamic: \"edge-1\";mb=300\r\n");
        assert_eq!(h.value_with_cap(Some(300)), "\"edge-1\";mb=300");
        // An id with a quote is escaped, never written broken.
        let q = Hop::new("a\"b").unwrap();
        assert_eq!(q.value(), "\"a\\\"b\"");
    }

    #[test]
    fn telemetry_is_the_cmcd_parameter_or_a_cmcd_field() {
        let none: [http::HeaderName; 0] = [];
        let cmcd = [http::HeaderName::from_static("cmcd-request")];
        let other = [http::HeaderName::from_static("accept")];
        assert!(carries_cmcd(Some("a=1&CMCD=bl%3D1"), none.iter()));
        assert!(carries_cmcd(Some("CMCD="), none.iter()));
        assert!(!carries_cmcd(Some("xCMCD=1"), none.iter()));
        assert!(!carries_cmcd(None, other.iter()));
        assert!(carries_cmcd(None, cmcd.iter()));
    }
}
