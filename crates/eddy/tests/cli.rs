//! The `eddy` binary as an operator runs it: config errors, `eddy up`, and crash safety of the
//! disk tier under `kill -9`.
#![allow(clippy::unwrap_used)]

mod common;
use common::{EDDY, Proc};

use eddy_testkit::origin::{Origin, Reply, Seen};
use eddy_testkit::{free_port, wait_for_listener, wait_until};
use std::process::{Command, Stdio};
use std::time::Duration;

fn get(url: &str) -> (u16, String, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new().get(url).send().await.unwrap();
        let status = r.status().as_u16();
        let x = r
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (status, x, r.bytes().await.unwrap().to_vec())
    })
}

#[test]
fn bad_config_exits_2_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    let run = |p: &std::path::Path| {
        Command::new(EDDY)
            .args(["edge", "--config"])
            .arg(p)
            .output()
            .unwrap()
    };
    std::fs::write(
        &path,
        "[edge]\norigins = [\"http://127.0.0.1:9\"]\n[cache]\nmemory_size = \"a lot\"\n",
    )
    .unwrap();
    let out = run(&path);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("edge.toml") && err.contains("cache.memory_size") && err.contains("MiB"),
        "{err}"
    );

    std::fs::write(&path, "[edge]\nlisten = 8080\n").unwrap();
    let out = run(&path);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("edge.toml") && err.contains("listen"), "{err}");

    let out = Command::new(EDDY).args(["edge"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "no origin at all is a config error"
    );
}

/// Issue 11 item 7: what config once accepted but could not do is an error naming the key, and
/// an admin API on the network needs a token or an explicit opt-in.
#[test]
fn config_that_cannot_work_is_refused_and_an_open_admin_api_needs_an_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = Command::new(EDDY)
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (name, text, key) in [
        (
            "port.toml",
            "[edge]\norigins = [\"http://127.0.0.1:65536\"]\n",
            "edge.origins",
        ),
        (
            "zero.toml",
            "[edge]\norigins = [\"http://127.0.0.1:0\"]\n",
            "edge.origins",
        ),
        (
            "mem.toml",
            "[edge]\norigins = [\"http://127.0.0.1:9\"]\n[cache]\nmemory_size = \"8 MiB\"\nmemory_max_object = \"16 MiB\"\n",
            "cache.memory_max_object",
        ),
        (
            "admin.toml",
            "[edge]\norigins = [\"http://127.0.0.1:9\"]\nadmin = \"0.0.0.0:9080\"\n",
            "edge.admin",
        ),
        (
            "site.toml",
            "[edge]\norigins = [\"http://127.0.0.1:9\"]\n[sites.\"shop.test/x\"]\nmerge_slashes = true\n",
            "sites",
        ),
    ] {
        let (code, err) = check(name, text);
        assert_eq!(code, Some(2), "{name}: {err}");
        assert!(err.contains(key) && err.contains(name), "{name}: {err}");
    }
    let (code, err) = check(
        "ok.toml",
        "[edge]\norigins = [\"http://127.0.0.1:9\"]\nadmin = \"0.0.0.0:9080\"\nadmin_token = \"t\"\n",
    );
    assert_eq!(code, Some(0), "{err}");

    // The opt-in: the edge starts with an unauthenticated admin API on all addresses, and says so.
    let (listen, admin) = (free_port().unwrap(), free_port().unwrap());
    let origin = Origin::start(|_: &Seen| Reply::ok("x")).unwrap();
    let child = Command::new(EDDY)
        .args([
            "edge",
            "--listen",
            &listen.to_string(),
            "--origin",
            &origin.url(),
        ])
        .args(["--admin", &format!("0.0.0.0:{}", admin.port())])
        .arg("--insecure-admin")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut p = Proc(child);
    assert!(wait_for_listener(listen, Duration::from_secs(20)));
    assert!(wait_for_listener(admin, Duration::from_secs(5)));
    p.0.kill().unwrap();
    let _ = p.0.wait();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut p.0.stderr.take().unwrap(), &mut out).unwrap();
    assert!(out.contains("--insecure-admin"), "{out}");
}

#[test]
fn eddy_up_serves_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (o, e, a) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let pair = || format!("{},{}", free_port().unwrap(), free_port().unwrap());
    let (shield, e2, e3) = (pair(), pair(), pair());
    let (router, dashboard, control) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let child = Command::new(EDDY)
        .args([
            "up",
            "--origin-listen",
            &o.to_string(),
            "--listen",
            &e.to_string(),
            "--admin",
            &a.to_string(),
            "--shield",
            &shield,
            "--more-edge",
            &e2,
            "--more-edge",
            &e3,
            "--router",
            &router.to_string(),
            "--dashboard",
            &dashboard.to_string(),
            "--control",
            &control.to_string(),
            "--state-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut p = Proc(child);
    assert!(
        wait_for_listener(e, Duration::from_secs(20)),
        "edge listens"
    );
    let url = format!("http://{e}/index.html");
    assert_eq!(get(&url).1, "MISS");
    let (status, x, body) = get(&url);
    assert_eq!((status, x.as_str()), (200, "HIT"));
    assert!(String::from_utf8_lossy(&body).contains("Hello"));
    // The demo video, HLS and DASH over the same segments, through the edge; a segment asked for
    // with CMCD is the same object.
    let (status, _, master) = get(&format!("http://{e}/vod/master.m3u8"));
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&master).contains("#EXT-X-STREAM-INF"));
    let (status, _, mpd) = get(&format!("http://{e}/vod/manifest.mpd"));
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&mpd).contains("<MPD"));
    let seg = format!("http://{e}/vod/seg-0-001.m4s");
    let (status, _, first) = get(&format!("{seg}?CMCD=bl%3D0%2Cbr%3D1200%2Csu"));
    assert_eq!(status, 200);
    assert!(first.len() > 10_000);
    let (status, x, again) = get(&format!("{seg}?CMCD=bl%3D2000%2Cbr%3D1200"));
    assert_eq!((status, x.as_str(), again.len()), (200, "HIT", first.len()));
    // The live LL-HLS stream, through the edge.
    let (status, _, live) = get(&format!("http://{e}/live/0/live.m3u8"));
    assert_eq!(status, 200);
    let live = String::from_utf8_lossy(&live).to_string();
    assert!(
        live.contains("#EXT-X-PART-INF:PART-TARGET=0.5") && live.contains("#EXT-X-PRELOAD-HINT"),
        "{live}"
    );
    // Every node of the topology serves; edge 1's miss went through the shield.
    let e2_listen = e2.split(',').next().unwrap().to_string();
    assert!(wait_for_listener(
        e2_listen.parse().unwrap(),
        Duration::from_secs(10)
    ));
    assert_eq!(get(&format!("http://{e2_listen}/index.html")).0, 200);
    let shield_admin = shield.split(',').nth(1).unwrap().to_string();
    let shield_metrics =
        String::from_utf8_lossy(&get(&format!("http://{shield_admin}/metrics")).2).to_string();
    assert!(
        shield_metrics
            .lines()
            .any(|l| l.starts_with("eddy_origin_fetches_total ") && !l.ends_with(" 0")),
        "the shield fetched from the origin: {shield_metrics}"
    );
    // `eddy purge` goes through the admin API onto the bus and back to the edge.
    let out = Command::new(EDDY)
        .args([
            "purge",
            "--admin",
            &a.to_string(),
            "--url",
            &format!("http://{e}/index.html"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"published\":true"));
    assert!(
        wait_until(Duration::from_secs(5), || get(&url).1 == "MISS"),
        "the purge was applied"
    );
    let out = Command::new(EDDY)
        .args(["purge", "--admin", &a.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a purge needs a target");
    // The router sends a viewer to one of the three edges, never the shield.
    let edges = [
        e.to_string(),
        e2_listen.clone(),
        e3.split(',').next().unwrap().to_string(),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let location = || {
        rt.block_on(async {
            let r = client
                .get(format!("http://{router}/index.html"))
                .send()
                .await
                .ok()?;
            (r.status() == 302).then_some(())?;
            r.headers()
                .get("location")?
                .to_str()
                .ok()
                .map(str::to_string)
        })
    };
    assert!(
        wait_until(Duration::from_secs(10), || location().is_some()),
        "the router never redirected"
    );
    let loc = location().unwrap();
    assert!(
        edges
            .iter()
            .any(|e| loc == format!("http://{e}/index.html")),
        "{loc} is not one of {edges:?}"
    );
    // `eddy status` prints the fleet from the dashboard.
    let status_ok = || {
        let out = Command::new(EDDY)
            .args(["status", "--admin", &dashboard.to_string()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (out.status.success() && text.contains("edges up   3/3") && text.contains("shield-1"))
            .then_some(text)
    };
    assert!(
        wait_until(Duration::from_secs(10), || status_ok().is_some()),
        "eddy status never showed three edges and the shield"
    );
    let pid = p.0.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || matches!(
            p.0.try_wait(),
            Ok(Some(_))
        )),
        "eddy up stops on Ctrl-C"
    );
    let status = p.0.wait().unwrap();
    assert!(status.success(), "clean exit: {status:?}");
    let mut out = String::new();
    use std::io::Read;
    p.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(
        out.contains(&format!("http://{e}")) && out.contains("curl"),
        "prints what to try:\n{out}"
    );
}

#[test]
fn kill_9_never_serves_a_torn_object() {
    let origin = Origin::start(|req: &Seen| {
        if req.path == "/slow" {
            Reply::status(200)
                .slow(vec![b's'; 4 << 20], 40, Duration::from_secs(4))
                .header("content-length", (4u32 << 20).to_string())
                .header("cache-control", "max-age=600")
        } else {
            Reply::ok("small and done").header("cache-control", "max-age=600")
        }
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port().unwrap();
    let spawn = || {
        Proc(
            Command::new(EDDY)
                .args([
                    "edge",
                    "--listen",
                    &listen.to_string(),
                    "--admin",
                    &free_port().unwrap().to_string(),
                    "--origin",
                    &origin.url(),
                    "--cache-dir",
                ])
                .arg(dir.path())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut p = spawn();
    assert!(wait_for_listener(listen, Duration::from_secs(20)));
    assert_eq!(get(&format!("http://{listen}/done")).1, "MISS");
    // Start the slow fill, then kill -9 in the middle of it.
    let slow_url = format!("http://{listen}/slow");
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            if let Ok(mut r) = reqwest::Client::new().get(&slow_url).send().await {
                while let Ok(Some(_)) = r.chunk().await {}
            }
        })
    });
    assert!(wait_until(Duration::from_secs(10), || origin
        .count("/slow")
        == 1));
    std::thread::sleep(Duration::from_millis(500)); // mid-body: the origin takes 4 s
    Command::new("kill")
        .args(["-9", &p.0.id().to_string()])
        .status()
        .unwrap();
    let _ = p.0.wait();
    let _ = t.join();

    let _p2 = spawn();
    assert!(wait_for_listener(listen, Duration::from_secs(20)));
    let (_, x, body) = get(&format!("http://{listen}/done"));
    assert_eq!(
        (x.as_str(), body.as_slice()),
        ("HIT", &b"small and done"[..]),
        "completed object survived"
    );
    let (status, x, body) = get(&format!("http://{listen}/slow"));
    assert_eq!(status, 200);
    assert_eq!(x, "MISS", "the torn fill was not kept");
    assert_eq!(body.len(), 4 << 20, "full body from the origin");
    drop(p);
}

/// The leaf certificate an HTTPS port at `addr` presents for `name`, to a client trusting `ca`.
fn presented(addr: std::net::SocketAddr, name: &str, ca: &[u8]) -> Option<Vec<u8>> {
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.to_vec().into()).ok()?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let name = rustls::pki_types::ServerName::try_from(name.to_string()).ok()?;
        let s = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .ok()?;
        Some(s.get_ref().1.peer_certificates()?.first()?.to_vec())
    })
}

#[test]
fn sighup_reloads_the_https_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = eddy_testkit::pki::TestCa::new().unwrap();
    let first = ca.issue(dir.path(), "site", &["site.test"]).unwrap();
    let (listen, admin, tls) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let origin = Origin::start(|_: &Seen| Reply::ok("x")).unwrap();
    let config = dir.path().join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "[edge]\nlisten = \"{listen}\"\nadmin = \"{admin}\"\norigins = [\"{}\"]\n[tls]\nlisten = \"{tls}\"\ncertificates = [{{ cert = {:?}, key = {:?} }}]\n",
            origin.url(),
            first.cert,
            first.key
        ),
    )
    .unwrap();
    let child = Command::new(EDDY)
        .args(["edge", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut p = Proc(child);
    assert!(wait_for_listener(tls, Duration::from_secs(20)));
    assert_eq!(
        presented(tls, "site.test", &ca.der()),
        Some(first.der.clone())
    );
    let renewed = ca.issue(dir.path(), "site", &["site.test"]).unwrap();
    let pid = p.0.id().to_string();
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || {
            presented(tls, "site.test", &ca.der()) == Some(renewed.der.clone())
        }),
        "the new certificate is presented after SIGHUP"
    );
    assert!(
        p.0.try_wait().unwrap().is_none(),
        "SIGHUP does not stop the edge"
    );
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let status = p.0.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut p.0.stderr.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{out}");
    assert!(out.contains("reloaded the TLS certificates"), "{out}");
}

#[test]
fn eddy_sign_prints_a_url_the_edge_accepts() {
    let key = "00112233445566778899aabbccddeeff";
    let out = Command::new(EDDY)
        .args([
            "sign",
            "--acl",
            "/video/show-1/*",
            "--ttl",
            "600",
            "https://v.test/video/show-1/master.m3u8?a=1",
        ])
        .env("EDDY_SIGNING_KEY", key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap();
    let url = url.trim();
    assert!(
        url.starts_with("https://v.test/video/show-1/master.m3u8?a=1&__token__=exp="),
        "{url}"
    );
    let query = url.split_once('?').unwrap().1;
    let token = eddy_auth::token::from_query(query, "__token__")
        .unwrap()
        .unwrap();
    let keys = [eddy_auth::Key::from_hex(key).unwrap()];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(
        eddy_auth::token::verify(&token, "/video/show-1/720p/seg-1.m4s", None, now, &keys),
        Ok(())
    );
    // A key that does not read is refused, and never echoed.
    let out = Command::new(EDDY)
        .args(["sign", "--key", "secretsecretsecretzz", "/video/a"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hex") && !err.contains("secretsecret"),
        "{err}"
    );
}

#[test]
fn eddy_token_prints_a_token_and_the_table_that_admits_it() {
    let out = Command::new(EDDY)
        .args(["token", "--name", "cms", "--scopes", "purge,events"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token.len(), 64, "{token}");
    let table = String::from_utf8_lossy(&out.stderr);
    assert!(
        table.contains(&format!("sha256 = \"{}\"", eddy_auth::api::hash(&token)))
            && table.contains("scopes = [\"purge\", \"events\"]")
            && !table.contains(&token),
        "{table}"
    );
    let out = Command::new(EDDY)
        .args(["token", "--name", "x", "--scopes", "root"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("root"));
}

#[test]
fn eddy_sim_prints_writes_and_plots_and_names_a_bad_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, svg, bin) = (
        dir.path().join("m.csv"),
        dir.path().join("m.svg"),
        dir.path().join("w.bin"),
    );
    let out = Command::new(EDDY)
        .args(["sim", "--workload", "vod-irm", "--requests", "20000"])
        .args([
            "--capacity",
            "1%,10%",
            "--policies",
            "s3fifo,learned,belady",
        ])
        .arg("--csv")
        .arg(&csv)
        .arg("--plot")
        .arg(&svg)
        .arg("--write-trace")
        .arg(&bin)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("learned") && stdout.contains("belady"),
        "{stdout}"
    );
    // One CSV row per policy and capacity, a plot, and the trace in libCacheSim's format.
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap().lines().count(),
        1 + 3 * 2
    );
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let t = eddy_sim::trace::read_oracle(&bin).unwrap();
    assert_eq!(t.len(), 20_000);

    let out = Command::new(EDDY)
        .args([
            "sim",
            "--workload",
            "vod",
            "--requests",
            "1000",
            "--policies",
            "lru,mru",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("\"mru\""),
        "{stderr}"
    );
}
