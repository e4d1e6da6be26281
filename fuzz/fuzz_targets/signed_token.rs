#![no_main]
//! Any bytes as a signed-URL token (in a query, a cookie, or as is) are judged without a panic,
//! and none is granted without a signature from the key.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(key) = eddy_auth::Key::from_hex("00112233445566778899aabbccddeeff") else {
        return;
    };
    let keys = [key];
    let _ = eddy_auth::token::from_cookie(s, "__token__");
    if let Ok(Some(t)) = eddy_auth::token::from_query(s, "__token__") {
        let _ = eddy_auth::token::verify(&t, "/video/a.m4s", None, 1_767_225_600, &keys);
    }
    // Random bytes never carry a valid HMAC-SHA256.
    assert!(eddy_auth::token::verify(s, "/video/a.m4s", None, 1_767_225_600, &keys).is_err());
});
