//! `eddy status`: the dashboard's snapshot as terminal tables (or its raw JSON).

use anyhow::Context;
use eddy_admin::fleet::Snapshot;

/// Fetch `http://<admin>/api/status` and print it.
pub fn run(admin: &str, json: bool) -> anyhow::Result<()> {
    let url = format!("http://{admin}/api/status");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("client runtime")?;
    let text = rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(&url)
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .with_context(|| {
                format!("no answer from the dashboard at {url}; is `eddy admin` (or `eddy up`) running, is --admin right?")
            })?;
        let status = resp.status();
        let text = resp.text().await.context("reading the status answer")?;
        if !status.is_success() {
            anyhow::bail!("the dashboard at {url} answered {status}: {text}");
        }
        anyhow::Ok(text)
    })?;
    if json {
        println!("{text}");
        return Ok(());
    }
    let s: Snapshot = serde_json::from_str(&text)
        .with_context(|| format!("the answer of {url} is not a status snapshot"))?;
    print!("{}", render(&s));
    Ok(())
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

/// The snapshot as text tables.
pub fn render(s: &Snapshot) -> String {
    let t = &s.totals;
    let p = &s.purge;
    let mut out = String::new();
    out.push_str(&format!("Eddy fleet at {}\n\n", s.time));
    out.push_str(&format!(
        "  requests/s {:>10.0}   hit ratio {:>7}   origin fetches/s {:>8.1}\n",
        t.rps,
        opt(t.hit_ratio, |r| format!("{:.1}%", r * 100.0)),
        t.origin_rps
    ));
    out.push_str(&format!(
        "  edges up {:>3}/{:<3}      shields up {:>3}      origins down {:>3}\n",
        t.edges_up, t.edges, t.shields_up, t.origins_down
    ));
    out.push_str(&format!(
        "  purges {} requested, {} applied; latency p50 {} p99 {}\n\n",
        p.requested,
        p.applied,
        opt(p.p50_ms, |v| format!("{v:.1} ms")),
        opt(p.p99_ms, |v| format!("{v:.1} ms")),
    ));
    out.push_str(&format!(
        "  {:<12} {:<7} {:<5} {:>9} {:>8} {:>9} {:>6} {:>11} {:>7}  {}\n",
        "NODE", "ROLE", "STATE", "REQ/S", "HIT", "ORIGIN/S", "LOAD", "REQUESTS", "ERRORS", "URL"
    ));
    for n in &s.nodes {
        out.push_str(&format!(
            "  {:<12} {:<7} {:<5} {:>9.0} {:>8} {:>9.1} {:>5.1}% {:>11} {:>7}  {}\n",
            n.id,
            n.role,
            if n.up { "up" } else { "DOWN" },
            n.rps,
            opt(n.hit_ratio, |r| format!("{:.1}%", r * 100.0)),
            n.origin_rps,
            n.load * 100.0,
            n.requests,
            n.errors,
            n.url.as_deref().unwrap_or("-"),
        ));
    }
    if s.nodes.is_empty() {
        out.push_str("  (no heartbeats yet: are the nodes on the same bus?)\n");
    }
    if !s.origins.is_empty() {
        out.push_str(&format!(
            "\n  {:<32} {:<5} {:<12} {}\n",
            "ORIGIN", "STATE", "REPORTED BY", "WHY"
        ));
        for o in &s.origins {
            out.push_str(&format!(
                "  {:<32} {:<5} {:<12} {}\n",
                o.origin,
                if o.healthy { "up" } else { "DOWN" },
                o.edge.as_deref().unwrap_or("-"),
                o.detail.as_deref().unwrap_or("")
            ));
        }
    }
    if !s.spikes.is_empty() {
        out.push_str(&format!(
            "\n  {:<26} {:<10} {:>9} {:>9}  {}\n",
            "SPIKE AT", "EDGE", "REQ/S", "BASELINE", "KEY"
        ));
        for x in s.spikes.iter().take(5) {
            out.push_str(&format!(
                "  {:<26} {:<10} {:>9.0} {:>9.1}  {}\n",
                x.time, x.edge, x.rate, x.baseline, x.key
            ));
        }
    }
    out
}
