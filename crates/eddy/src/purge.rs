//! `eddy purge`: ask an edge's admin API to purge. With a bus, the edge publishes
//! `purge.requested` and every edge applies it; without one, that edge applies it.

use anyhow::{Context, bail};
use clap::Args;

/// `eddy purge` flags.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["url", "prefix", "key", "all"])))]
pub struct PurgeArgs {
    /// One URL (`http://host/path` or `host/path`), every stored variant.
    #[arg(long)]
    url: Option<String>,
    /// Every URL starting with this (`host/dir/`).
    #[arg(long)]
    prefix: Option<String>,
    /// Every object tagged with this surrogate key.
    #[arg(long)]
    key: Option<String>,
    /// Everything in every cache (the admin API must have a token, given with --token).
    #[arg(long)]
    all: bool,
    /// Mark stale (revalidate) instead of removing.
    #[arg(long)]
    soft: bool,
    /// The edge's admin address.
    #[arg(long, default_value = "127.0.0.1:9080")]
    admin: String,
    /// Bearer token, when the admin API requires one (or EDDY_ADMIN_TOKEN).
    #[arg(long, env = "EDDY_ADMIN_TOKEN")]
    token: Option<String>,
}

/// Send the purge and print the answer.
pub fn run(a: PurgeArgs) -> anyhow::Result<()> {
    let mut body = serde_json::Map::new();
    for (k, v) in [("url", &a.url), ("prefix", &a.prefix), ("key", &a.key)] {
        if let Some(v) = v {
            body.insert(k.into(), serde_json::Value::String(v.clone()));
        }
    }
    if a.all {
        body.insert("all".into(), serde_json::Value::Bool(true));
    }
    body.insert("soft".into(), serde_json::Value::Bool(a.soft));
    let url = format!("http://{}/purge", a.admin);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("client runtime")?;
    let (status, text) = rt.block_on(async {
        let mut req = reqwest::Client::new()
            .post(&url)
            .timeout(std::time::Duration::from_secs(10))
            .json(&serde_json::Value::Object(body));
        if let Some(t) = &a.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.with_context(|| {
            format!("no answer from the admin API at {url}; is the edge running, is --admin right?")
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        anyhow::Ok((status, text))
    })?;
    if !status.is_success() {
        bail!("{url} answered {status}: {}", text.trim());
    }
    println!("{}", text.trim());
    Ok(())
}
