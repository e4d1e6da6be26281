#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

fn opts() -> eddy_url::PathOptions<'static> {
    eddy_url::PathOptions::default()
}

/// What hls.js 1.7.4 sent for a segment in query mode, v1 (STREAMING.md, measured).
const HLS_V1: &str = "bl=0,br=2306,cid=\"show-1\",d=2000,dl=0,mtp=2300,nor=\"seg_001.m4s\",ot=av,rtp=11500,sf=h,sid=\"6e2fb550-c457-11e9-bb97-0800200c9a66\",st=v,su,tb=2306";

/// What dash.js 5.2.1 sent for a video segment in query mode, v2 (measured here through the edge:
/// URLSearchParams writes a space as `+`).
const DASH_V2_QUERY: &str = "CMCD=ab%3D%28600%3Bv+64%3Ba%29%2Cbl%3D%281900%3Bv%29%2Cbr%3D%28600%3Bv%29%2Cbs%2Cbsd%3D%2875%3Bv%29%2Ccid%3D%22vod-dash%22%2Cd%3D2000%2Cnor%3D%28%22seg-1-003.m4s%22%29%2Cot%3Dv%2Csid%3D%22d7b2%22%2Csn%3D6%2Cst%3Dv%2Csta%3Dp%2Ctab%3D%281200%3Bv+64%3Ba%29%2Ctb%3D%281200%3Bv%29%2Cv%3D2%2Cx%3D%22a%2Bb%22";

#[test]
fn dash_js_v2_query_reads_with_form_encoded_spaces() {
    let c = Cmcd::from_query(DASH_V2_QUERY).unwrap().unwrap();
    assert_eq!(c.version, 2);
    assert_eq!(
        (c.br, c.bl, c.tb, c.bsd),
        (Some(600), Some(1900), Some(1200), Some(75))
    );
    assert!(c.bs);
    assert_eq!(c.ot, Some(ObjectType::Video));
    assert_eq!(c.sta, Some(PlayerState::Playing));
    assert_eq!(c.next[0].url, "seg-1-003.m4s");
    // `ab`, `tab` and the custom-less `x` are read and passed over; `%2B` stays a `+`.
    assert_eq!(c.skipped, 3);
}

#[test]
fn hls_js_v1_query_reads_whole() {
    let q = format!("foo=1&CMCD={}", encode(HLS_V1));
    let c = Cmcd::from_query(&q).unwrap().unwrap();
    assert_eq!(c.version, 1);
    assert_eq!(c.bl, Some(0));
    assert_eq!(c.br, Some(2306));
    assert_eq!(c.cid.as_deref(), Some("show-1"));
    assert_eq!(c.d, Some(2000));
    assert_eq!(c.mtp, Some(2300));
    assert_eq!(c.ot, Some(ObjectType::Muxed));
    assert_eq!(c.rtp, Some(11500));
    assert_eq!(c.sf, Some(StreamingFormat::Hls));
    assert_eq!(c.st, Some(StreamType::Vod));
    assert!(c.su);
    assert!(!c.bs);
    assert_eq!(c.tb, Some(2306));
    assert_eq!(
        c.next,
        vec![NextObject {
            url: "seg_001.m4s".into(),
            range: None
        }]
    );
    assert_eq!(c.skipped, 0);
    assert_eq!(Cmcd::from_query("foo=1&bar=2").unwrap(), None);
    assert_eq!(Cmcd::from_query("").unwrap(), None);
    // `xCMCD=` is another parameter.
    assert_eq!(Cmcd::from_query("xCMCD=br%3D1").unwrap(), None);
}

#[test]
fn hls_js_v2_headers_read_whole() {
    // What hls.js sent with useHeaders and version 2 (STREAMING.md, measured).
    let fields: Vec<(&str, &[u8])> = vec![
        ("Accept", b"*/*"),
        (
            "CMCD-Object",
            b"br=(2306),d=2000,lb=(655.6),ot=av,tb=(2306),tpb=(2305.6)",
        ),
        (
            "cmcd-request",
            b"bl=(6000),dl=6000,mtp=(43200),nor=(\"seg_004.m4s\"),pb=(2305.6),sn=5,sta=p",
        ),
        ("CMCD-Session", b"cid=\"c\",sid=\"s\",sf=h,st=v,v=2"),
    ];
    let c = Cmcd::from_headers(fields).unwrap().unwrap();
    assert_eq!(c.version, 2);
    assert_eq!(c.br, Some(2306));
    assert_eq!(c.lb, Some(656), "decimals round");
    assert_eq!(c.bl, Some(6000));
    assert_eq!(c.mtp, Some(43200));
    assert_eq!(c.pb, Some(2306));
    assert_eq!(c.sn, Some(5));
    assert_eq!(c.sta, Some(PlayerState::Playing));
    assert_eq!(c.next[0].url, "seg_004.m4s");
    assert_eq!(c.skipped, 1, "tpb is not modelled");
    let none: Vec<(&str, &[u8])> = vec![("Accept", b"*/*")];
    assert_eq!(Cmcd::from_headers(none).unwrap(), None);
}

#[test]
fn inner_lists_fold_by_meaning() {
    let c = Cmcd::parse(b"br=(2000;v 96;a),bl=(6000;v 2400;a),mtp=(100 300 200)").unwrap();
    assert_eq!(c.br, Some(2096), "bitrates of the media types add up");
    assert_eq!(c.bl, Some(2400), "the shortest buffer stops playback");
    assert_eq!(c.mtp, Some(300));
}

#[test]
fn v2_next_objects_carry_ranges_and_v1_nrr_applies_to_the_first() {
    let c = Cmcd::parse(b"nor=(\"a.m4s\";r=\"0-50000\" \"b.m4s\"),v=2").unwrap();
    assert_eq!(c.next.len(), 2);
    assert_eq!(c.next[0].range, Some((0, Some(50000))));
    assert_eq!(c.next[1].range, None);
    let c = Cmcd::parse(b"nor=\"a.m4s\",nrr=\"100-\"").unwrap();
    assert_eq!(c.next[0].range, Some((100, None)));
    let many = format!(
        "nor=({})",
        (0..20)
            .map(|i| format!("\"s{i}.m4s\""))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert_eq!(Cmcd::parse(many.as_bytes()).unwrap().next.len(), MAX_NEXT);
}

#[test]
fn event_reports_read_line_by_line() {
    // A v2 event line as hls.js posted it (STREAMING.md, measured), twice, CRLF and a blank line.
    let line = "br=(2306),cid=\"c\",e=rr,mtp=(2300),rc=200,sf=h,sid=\"s\",sn=4,st=v,sta=s,ts=1733011200000,ttfb=5,ttlb=15,url=\"https://e/x/seg_1.m4s\",v=2";
    let body = format!("{line}\r\n\n{line}\n");
    let r = reports(body.as_bytes()).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].e, Some(EventKind::ResponseReceived));
    assert_eq!(r[0].rc, Some(200));
    assert_eq!(r[0].ts, Some(1_733_011_200_000));
    assert_eq!(r[0].ttfb, Some(5));
    assert_eq!(r[0].ttlb, Some(15));
    assert_eq!(r[0].url.as_deref(), Some("https://e/x/seg_1.m4s"));
    let bad = format!("{line}\nbr=\"x\"\n");
    assert_eq!(
        reports(bad.as_bytes()).unwrap_err(),
        CmcdError::Report {
            line: 2,
            error: Box::new(CmcdError::Value {
                key: "br",
                expected: "a non-negative number, or an inner list of them"
            })
        }
    );
    let too_many = "e=t,ts=1\n".repeat(MAX_REPORTS + 1);
    assert_eq!(
        reports(too_many.as_bytes()).unwrap_err(),
        CmcdError::TooManyReports(MAX_REPORTS)
    );
    assert!(matches!(
        reports(&vec![b'a'; MAX_REPORT_BODY + 1]),
        Err(CmcdError::TooLong { .. })
    ));
    assert_eq!(reports(b"").unwrap(), vec![]);
}

#[test]
fn wrong_values_refuse_the_report_and_name_the_key() {
    for (input, key) in [
        ("br=\"2000\"", "br"),
        ("br=-1", "br"),
        ("br=()", "br"),
        ("su=1", "su"),
        ("ot=zz", "ot"),
        ("ot=\"v\"", "ot"),
        ("sf=x", "sf"),
        ("st=x", "st"),
        ("sta=x", "sta"),
        ("sid=abc", "sid"),
        ("pr=0", "pr"),
        ("rc=1000", "rc"),
        ("sn=-1", "sn"),
        ("nrr=\"5-1\"", "nrr"),
        ("nrr=\"-5\"", "nrr"),
        ("nor=1", "nor"),
        ("nor=(\"a\";r=1)", "nor"),
        ("v=(1)", "v"),
    ] {
        match Cmcd::parse(input.as_bytes()) {
            Err(CmcdError::Value { key: k, .. }) => assert_eq!(k, key, "{input}"),
            other => panic!("{input}: {other:?}"),
        }
    }
    assert_eq!(Cmcd::parse(b"v=3").unwrap_err(), CmcdError::Version(3));
    let long_sid = format!("sid=\"{}\"", "a".repeat(MAX_SID + 1));
    assert_eq!(
        Cmcd::parse(long_sid.as_bytes()).unwrap_err(),
        CmcdError::ValueTooLong {
            key: "sid",
            max: MAX_SID
        }
    );
    assert!(matches!(Cmcd::parse(b"br=1,,"), Err(CmcdError::Syntax(_))));
    assert!(matches!(
        Cmcd::parse(&vec![b'a'; MAX_BYTES + 1]),
        Err(CmcdError::TooLong { .. })
    ));
    assert_eq!(
        Cmcd::from_query("CMCD=%FF").unwrap_err(),
        CmcdError::Encoding
    );
    // The message says what to send.
    let msg = Cmcd::parse(b"ot=zz").unwrap_err().to_string();
    assert!(msg.contains("`ot`") && msg.contains("av"), "{msg}");
}

#[test]
fn custom_and_unknown_keys_are_counted_not_refused() {
    let c = Cmcd::parse(b"com.example-x=\"y\",zz=(1 2),br=10").unwrap();
    assert_eq!(c.skipped, 2);
    assert_eq!(c.br, Some(10));
    // False booleans are ?0.
    let c = Cmcd::parse(b"su=?0,bs").unwrap();
    assert!(!c.su && c.bs);
}

#[test]
fn next_paths_resolve_against_the_request_and_stay_on_the_site() {
    let c = Cmcd::parse(
        b"nor=(\"seg_4.m4s\" \"../480p/seg_4.m4s\" \"/abs/x.m4s?t=1\" \"https://evil.test/x\" \"//evil.test/x\" \"%2e%2e/%2e%2e/%2e%2e/x\")",
    )
    .unwrap();
    assert_eq!(c.next.len(), MAX_NEXT);
    assert_eq!(
        c.next_paths("/v/720p/seg_3.m4s?CMCD=x", opts()),
        vec!["/v/720p/seg_4.m4s", "/v/480p/seg_4.m4s", "/abs/x.m4s?t=1"]
    );
    let c = Cmcd::parse(b"nor=(\"%2e%2e/%2e%2e/%2e%2e/x\" \"data:x\" \"a#b\" \"\")").unwrap();
    assert_eq!(c.next_paths("/v/seg.m4s", opts()), vec!["/x"]);
    // As hls.js sends it: encodeURIComponent of the relative path.
    let c = Cmcd::parse(b"nor=\"..%2F480p%2Fseg_4.m4s\"").unwrap();
    assert_eq!(
        c.next_paths("/v/720p/seg_3.m4s", opts()),
        vec!["/v/480p/seg_4.m4s"]
    );
    let c = Cmcd::parse(b"nor=(\"%2F%2Fevil.test%2Fx\" \"https%3A%2F%2Fevil.test%2Fx\")").unwrap();
    assert!(c.next_paths("/v/a.m4s", opts()).is_empty());
}

/// Percent-encode as encodeURIComponent does.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Cmcd::parse(&data);
        let _ = reports(&data);
        if let Ok(s) = std::str::from_utf8(&data) {
            let _ = Cmcd::from_query(s);
            if let Ok(c) = Cmcd::parse(&data) {
                let _ = c.next_paths("/a/b/c.m3u8", opts());
            }
        }
    }

    #[test]
    fn next_paths_are_canonical_absolute_paths(rel in "[a-z0-9./%_-]{0,40}", base in "/[a-z0-9/._-]{0,30}") {
        let dict = format!("nor=\"{rel}\"");
        if let Ok(c) = Cmcd::parse(dict.as_bytes()) {
            for p in c.next_paths(&base, opts()) {
                prop_assert!(p.starts_with('/'), "{p}");
                prop_assert_eq!(eddy_url::path(p.as_bytes(), opts()).unwrap(), p.clone());
            }
        }
    }

    #[test]
    fn query_and_headers_read_the_same(br in 0u32..100_000, bl in 0u32..60_000, su: bool, sid in "[a-z0-9-]{1,64}") {
        let obj = format!("br={br}");
        let req = format!("bl={bl}{}", if su { ",su" } else { "" });
        let ses = format!("sid=\"{sid}\"");
        let q = format!("CMCD={}", encode(&format!("{obj},{req},{ses}")));
        let from_q = Cmcd::from_query(&q).unwrap().unwrap();
        let fields: Vec<(&str, &[u8])> = vec![
            ("CMCD-Object", obj.as_bytes()),
            ("CMCD-Request", req.as_bytes()),
            ("CMCD-Session", ses.as_bytes()),
        ];
        let from_h = Cmcd::from_headers(fields).unwrap().unwrap();
        prop_assert_eq!(&from_q, &from_h);
        prop_assert_eq!(from_q.br, Some(br));
        prop_assert_eq!(from_q.su, su);
    }
}
