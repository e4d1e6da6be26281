//! `[[api_tokens]]`: named bearer tokens for the edge's admin API, each with scopes. Owns
//! [`ApiTokenFile`]; the validated form is `eddy_auth::api::ApiTokens` in
//! [`crate::Config::api_tokens`].
//!
//! ```toml
//! [[api_tokens]]
//! name = "cms"                                  # what audit records and logs call it
//! sha256 = "<64 hex digits>"                    # eddy token new prints the token and this
//! scopes = ["purge", "events"]                  # purge, events, read, admin
//! ```
//!
//! Only the hash is kept: a config file that leaks does not leak a token. `edge.admin_token`
//! (one secret in the clear, from before) still works, as a token named `admin_token` with
//! every scope.

use std::path::Path;

use eddy_auth::api::{ApiToken, ApiTokens, Scope};
use serde::Deserialize;

use crate::{ConfigError, invalid};

/// One `[[api_tokens]]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenFile {
    /// The token's name: letters, digits, `-`, `_`, `.` (at most 64).
    pub name: String,
    /// The SHA-256 of the token, in hex.
    pub sha256: String,
    /// What it may do: `purge`, `events`, `read`, `admin` (everything).
    pub scopes: Vec<String>,
}

/// Validate `[[api_tokens]]`, with an older single token in the clear (`edge.admin_token` or
/// `control.token`) as one more, named `legacy.0`, with every scope.
pub(crate) fn api_tokens(
    name: &Path,
    files: Vec<ApiTokenFile>,
    legacy: (&'static str, Option<&str>),
) -> Result<ApiTokens, ConfigError> {
    let mut out: Vec<ApiToken> = Vec::with_capacity(files.len() + 1);
    for f in files {
        let ok_name = !f.name.is_empty()
            && f.name.len() <= 64
            && f.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok_name {
            return Err(invalid(
                name,
                "api_tokens.name",
                &f.name,
                "1 to 64 letters, digits, -, _ or .",
            ));
        }
        if out.iter().any(|t| t.name() == f.name) || f.name == legacy.0 {
            return Err(invalid(
                name,
                "api_tokens.name",
                &f.name,
                &format!(
                    "a name of its own (each token once; {} is the older single token's)",
                    legacy.0
                ),
            ));
        }
        if f.scopes.is_empty() {
            return Err(invalid(
                name,
                "api_tokens.scopes",
                "[]",
                "at least one of purge, events, read, admin",
            ));
        }
        let mut scopes = Vec::with_capacity(f.scopes.len());
        for s in &f.scopes {
            scopes.push(Scope::parse(s).ok_or_else(|| {
                invalid(name, "api_tokens.scopes", s, "purge, events, read or admin")
            })?);
        }
        let token = ApiToken::new(&f.name, &f.sha256, &scopes)
            .map_err(|e| invalid(name, "api_tokens.sha256", &f.sha256, &e.to_string()))?;
        out.push(token);
    }
    if let Some(t) = legacy.1 {
        out.push(ApiToken::from_secret(legacy.0, t, &[Scope::Admin]));
    }
    Ok(ApiTokens::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::each_fails_naming_its_key;

    #[test]
    fn tokens_read_with_their_scopes_and_the_old_admin_token_joins_them() -> Result<(), ConfigError>
    {
        let h = eddy_auth::api::hash("cms-secret");
        let f = crate::parse(
            &format!(
                "[[api_tokens]]\nname = \"cms\"\nsha256 = \"{h}\"\nscopes = [\"purge\", \"events\"]\n"
            ),
            Path::new("t.toml"),
        )?;
        let t = api_tokens(
            Path::new("t.toml"),
            f.api_tokens,
            ("admin_token", Some("old")),
        )?;
        assert_eq!(t.tokens().len(), 2);
        assert_eq!(
            t.check(Some("Bearer cms-secret"), Scope::Purge),
            eddy_auth::api::Verdict::Allowed("cms".into())
        );
        assert_eq!(
            t.check(Some("Bearer old"), Scope::Admin),
            eddy_auth::api::Verdict::Allowed("admin_token".into())
        );
        Ok(())
    }

    #[test]
    fn bad_tokens_fail_naming_their_key() {
        let h = eddy_auth::api::hash("x");
        let t =
            |body: &str| format!("[edge]\norigins = [\"http://a:1\"]\n[[api_tokens]]\n{body}\n");
        let cases = [
            (
                t(&format!(
                    "name = \"a b\"\nsha256 = \"{h}\"\nscopes = [\"read\"]"
                )),
                "api_tokens.name",
            ),
            (
                t(&format!("name = \"a\"\nsha256 = \"{h}\"\nscopes = []")),
                "api_tokens.scopes",
            ),
            (
                t(&format!(
                    "name = \"a\"\nsha256 = \"{h}\"\nscopes = [\"root\"]"
                )),
                "api_tokens.scopes",
            ),
            (
                t("name = \"a\"\nsha256 = \"abc\"\nscopes = [\"read\"]"),
                "api_tokens.sha256",
            ),
            (
                t(&format!(
                    "name = \"a\"\nsha256 = \"{h}\"\nscopes = [\"read\"]\n[[api_tokens]]\nname = \"a\"\nsha256 = \"{h}\"\nscopes = [\"read\"]"
                )),
                "api_tokens.name",
            ),
        ];
        let cases: Vec<(&str, &str)> = cases.iter().map(|(t, k)| (t.as_str(), *k)).collect();
        each_fails_naming_its_key(&cases);
    }
}
