//! Range slicing: a `Range` request is answered from one fixed-size block of the object, fetched
//! from the origin with a block-aligned `Range` and cached under its own key, so ranges of a
//! large file never pull the whole file through the edge (as nginx's slice module does).
//!
//! A request `bytes=a-b` maps to block `a / S`; the edge fetches `bytes=iS-(i+1)S-1`, stores the
//! 206 as a plain 200 of the block (keeping the total length), serves the requested part of the
//! block and rewrites `Content-Range` to absolute offsets. A range that runs past the block end
//! gets a shorter 206 (RFC 9110 §14.2 lets a server send less than asked; players ask again).
//! Suffix ranges (`bytes=-n`) and multi-range requests take the whole-object path, as do requests
//! for objects already cached whole.

/// The block a request was mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// Block number.
    pub index: u64,
    /// First byte of the block (absolute).
    pub block_start: u64,
    /// Last byte of the block (absolute, inclusive).
    pub block_end: u64,
}

/// Header the edge stores on a block to remember the full object length. Never sent to clients.
pub const TOTAL_HEADER: &str = "eddy-slice-total";

/// Parse a single `bytes=a-b` or `bytes=a-` range. `None` for suffix, multi or malformed ranges.
pub fn parse_single_range(v: &str) -> Option<(u64, Option<u64>)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let a: u64 = a.trim().parse().ok()?;
    let b = b.trim();
    if b.is_empty() {
        return Some((a, None));
    }
    let b: u64 = b.parse().ok()?;
    (b >= a).then_some((a, Some(b)))
}

/// Map a range to its block of `size` bytes, and the block-relative range to serve.
pub fn plan(range: (u64, Option<u64>), size: u64) -> Option<(Slice, String)> {
    if size == 0 {
        return None;
    }
    let (a, b) = range;
    let index = a / size;
    let block_start = index.checked_mul(size)?;
    let block_end = block_start.checked_add(size - 1)?;
    let rel_end = b.map_or(block_end, |b| b.min(block_end)) - block_start;
    let relative = format!("bytes={}-{}", a - block_start, rel_end);
    Some((
        Slice {
            index,
            block_start,
            block_end,
        },
        relative,
    ))
}

/// Parse `Content-Range: bytes x-y/total` into `(x, y, total)`.
pub fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (x, y) = range.split_once('-')?;
    let (x, y, total) = (x.parse().ok()?, y.parse().ok()?, total.parse().ok()?);
    (x <= y && y < total).then_some((x, y, total))
}

/// The cache-key suffix of block `index`.
pub fn key_suffix(index: u64) -> String {
    format!("#eddy-slice={index}")
}

/// Strip a block suffix from a cache-key URL.
pub fn strip_suffix(url: &str) -> &str {
    match url.rfind("#eddy-slice=") {
        Some(i) => &url[..i],
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plans_blocks() {
        let (s, rel) =
            plan((5_000_000, Some(5_000_099)), 1 << 20).unwrap_or_else(|| panic!("plan"));
        assert_eq!(s.index, 4);
        assert_eq!((s.block_start, s.block_end), (4 << 20, (5 << 20) - 1));
        assert_eq!(
            rel,
            format!("bytes={}-{}", 5_000_000 - (4 << 20), 5_000_099 - (4 << 20))
        );
        let (_, rel) = plan((0, None), 1 << 20).unwrap_or_else(|| panic!("plan"));
        assert_eq!(
            rel,
            format!("bytes=0-{}", (1 << 20) - 1),
            "open range ends at the block end"
        );
    }

    #[test]
    fn parses_ranges() {
        assert_eq!(parse_single_range("bytes=10-20"), Some((10, Some(20))));
        assert_eq!(parse_single_range("bytes=10-"), Some((10, None)));
        assert_eq!(parse_single_range("bytes=-10"), None);
        assert_eq!(parse_single_range("bytes=1-2,5-6"), None);
        assert_eq!(parse_single_range("bytes=20-10"), None);
        assert_eq!(parse_content_range("bytes 0-99/1000"), Some((0, 99, 1000)));
        assert_eq!(parse_content_range("bytes 0-99/*"), None);
        assert_eq!(strip_suffix("h/a#eddy-slice=3"), "h/a");
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            let _ = parse_single_range(&s);
            let _ = parse_content_range(&s);
        }

        #[test]
        fn plan_serves_a_prefix_of_the_request_inside_its_block(a in 0u64..1 << 40, len in 0u64..1 << 24, size in 1u64..1 << 22) {
            let (s, rel) = plan((a, Some(a + len)), size).unwrap_or_else(|| panic!("plan"));
            prop_assert!(s.block_start <= a && a <= s.block_end);
            let (x, y) = parse_single_range(&rel).and_then(|(x, y)| y.map(|y| (x, y))).unwrap_or_else(|| panic!("rel"));
            prop_assert_eq!(x + s.block_start, a);
            prop_assert!(y + s.block_start <= (a + len).min(s.block_end));
        }
    }
}
