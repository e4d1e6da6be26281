//! Header-field rules of the full proxy: hop-by-hop fields (RFC 9110 §7.6.1), 304 merging
//! (RFC 9111 §3.2) and the request values a `Vary` secondary key is built from (RFC 9111 §4.1).
//! Pure functions over header maps; the proxy phases call them.

use http::header;
use pingora_error::Result;
use pingora_http::ResponseHeader;

/// A response field's first value as text.
pub fn header_str<'a>(h: &'a ResponseHeader, name: &str) -> Option<&'a str> {
    h.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A response field's values joined with ", " (several field lines are one list).
pub fn joined(h: &ResponseHeader, name: header::HeaderName) -> Option<String> {
    let parts: Vec<&str> = h
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Hop-by-hop fields of a connection, never stored or forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// The field names a `Connection` field lists (lower case), other than the connection options
/// `close` and `keep-alive`.
pub fn connection_listed(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "close" && t != "keep-alive")
        .collect()
}

/// Remove from a response the fields its `Connection` lists and the hop-by-hop fields
/// themselves: they are never stored, replayed on hits, or forwarded (RFC 9110 §7.6.1).
pub fn strip_response_hops(resp: &mut ResponseHeader) {
    let mut names = connection_listed(&resp.headers);
    names.extend(HOP_BY_HOP.iter().map(|n| n.to_string()));
    for n in names {
        resp.remove_header(n.as_str());
    }
}

/// The request fields `Vary` names whose spelling does not change their meaning: lists of
/// tokens with optional weights.
const LIST_FIELDS: [&str; 2] = ["accept-encoding", "accept-language"];

/// The value a `Vary` secondary key uses for request field `name` (lower case), from all its
/// field lines. For `Accept-Encoding` and `Accept-Language` equivalent spellings give one value
/// (RFC 9111 §4.1 lets a cache normalise them): members in lower case without whitespace, a
/// weight of 1 dropped and others written shortest (`q=0.50` → `q=0.5`), other parameters
/// dropped, the list sorted and duplicates removed; so `gzip, br` and `BR,gzip;q=1` share a
/// variant. Any other field: its lines joined with `,` as they came.
pub fn vary_value<'a>(name: &str, lines: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    if !LIST_FIELDS.contains(&name) {
        let mut out = Vec::new();
        for l in lines {
            out.extend_from_slice(l);
            out.push(b',');
        }
        return out;
    }
    let mut members: Vec<String> = Vec::new();
    for line in lines {
        for member in line.split(|&b| b == b',') {
            let mut parts = member.split(|&b| b == b';');
            let token: String = parts
                .next()
                .unwrap_or_default()
                .iter()
                .filter(|b| !b.is_ascii_whitespace())
                .map(|b| b.to_ascii_lowercase() as char)
                .collect();
            if token.is_empty() {
                continue;
            }
            let weight = parts.find_map(|p| {
                let p: String = p
                    .iter()
                    .filter(|b| !b.is_ascii_whitespace())
                    .map(|b| b.to_ascii_lowercase() as char)
                    .collect();
                p.strip_prefix("q=").map(str::to_string)
            });
            let member = match weight.as_deref().map(str::parse::<f64>) {
                None | Some(Ok(1.0)) => token,
                Some(Ok(q)) if (0.0..1.0).contains(&q) => {
                    // RFC 9110 §12.4.2: at most three decimals.
                    let q = format!("{:.3}", (q * 1000.0).round() / 1000.0);
                    let q = q.trim_end_matches('0').trim_end_matches('.');
                    format!("{token};q={q}")
                }
                // A weight that does not parse is kept as written: never merged with another.
                Some(_) => format!("{token};q={}", weight.unwrap_or_default()),
            };
            members.push(member);
        }
    }
    members.sort();
    members.dedup();
    members.join(",").into_bytes()
}

/// RFC 9111 §3.2: a 304's fields replace the stored ones, except framing and connection fields.
pub fn merge_not_modified(
    stored: &ResponseHeader,
    fresh: &http::HeaderMap,
) -> Result<ResponseHeader> {
    let mut out = stored.clone();
    for name in fresh.keys() {
        if matches!(
            name.as_str(),
            "content-length"
                | "transfer-encoding"
                | "connection"
                | "keep-alive"
                | "proxy-connection"
                | "te"
                | "trailer"
                | "upgrade"
                | "content-encoding"
                | "content-range"
                | "vary"
        ) {
            continue;
        }
        out.remove_header(name);
        for v in fresh.get_all(name) {
            out.append_header(name.clone(), v.clone())?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str, lines: &[&str]) -> String {
        String::from_utf8_lossy(&vary_value(name, lines.iter().map(|l| l.as_bytes()))).into_owned()
    }

    #[test]
    fn equivalent_accept_lists_share_one_variant() {
        let ae = "accept-encoding";
        let want = v(ae, &["gzip, br"]);
        assert_eq!(want, "br,gzip");
        for same in [
            &["br,gzip"][..],
            &["BR , GZIP"],
            &["gzip;q=1.0, br"],
            &["gzip", "br"],
            &["br, gzip, br"],
        ] {
            assert_eq!(v(ae, same), want, "{same:?}");
        }
        assert_ne!(v(ae, &["gzip;q=0.5, br"]), want);
        assert_eq!(v(ae, &["gzip;q=0.50"]), v(ae, &["GZIP; Q=0.5"]));
        assert_eq!(v(ae, &["gzip;q=0"]), "gzip;q=0");
        assert_eq!(v(ae, &["identity;q=0, *"]), "*,identity;q=0");
        let al = "accept-language";
        assert_eq!(v(al, &["en-US, fr;q=0.5"]), v(al, &["fr;q=0.500,en-us"]));
        assert_ne!(v(al, &["en"]), v(al, &["fr"]));
        // Other fields vary on their exact value.
        assert_eq!(v("user-agent", &["A B"]), "A B,");
        assert_ne!(v("x-thing", &["a"]), v("x-thing", &["A"]));
    }

    #[test]
    fn connection_lists_name_hop_by_hop_fields() {
        let mut h = http::HeaderMap::new();
        h.append(
            header::CONNECTION,
            http::HeaderValue::from_static("X-Secret, keep-alive"),
        );
        h.append(
            header::CONNECTION,
            http::HeaderValue::from_static("close, x-other"),
        );
        assert_eq!(connection_listed(&h), ["x-secret", "x-other"]);
    }
}
