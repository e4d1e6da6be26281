//! `eddy token`: make a new API token and print the `[[api_tokens]]` table that admits it.

use anyhow::{Context, bail};
use clap::Args;
use eddy_auth::api::{self, Scope};

/// `eddy token` flags.
#[derive(Args)]
pub struct TokenArgs {
    /// The token's name (what logs and audit records call it).
    #[arg(long)]
    name: String,
    /// What it may do, comma-separated: purge, events, read, admin.
    #[arg(long, value_delimiter = ',', required = true)]
    scopes: Vec<String>,
}

/// Print a new token and its config table.
pub fn run(a: TokenArgs) -> anyhow::Result<()> {
    for s in &a.scopes {
        if Scope::parse(s).is_none() {
            bail!("--scopes: {s:?} is not one of purge, events, read, admin");
        }
    }
    let secret = api::generate().context("making a token")?;
    let scopes: Vec<String> = a.scopes.iter().map(|s| format!("{s:?}")).collect();
    eprintln!("# The token (give it to the client; it is kept nowhere else):");
    println!("{secret}");
    eprintln!("# Add this to the edge's config:");
    eprintln!(
        "[[api_tokens]]\nname = {:?}\nsha256 = \"{}\"\nscopes = [{}]",
        a.name,
        api::hash(&secret),
        scopes.join(", ")
    );
    Ok(())
}
