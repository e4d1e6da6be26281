//! Scoped API tokens: who may purge, publish events, read state, or administer.
//!
//! A token is a random secret a client presents as `Authorization: Bearer <secret>`. Config
//! keeps only its SHA-256 ([`hash`]), its name (what audit records say) and its scopes, so a
//! config file that leaks does not leak a token. [`ApiTokens::check`] finds the token whose hash
//! matches (comparing every configured hash in constant time) and says whether its scopes
//! cover what is asked.

/// Why a token cannot be configured or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiTokenError {
    /// The hash is not 64 hex digits.
    #[error("sha256 must be the 64 hex digits of the token's SHA-256 (eddy token new prints it)")]
    NotSha256,
    /// The system's random generator failed.
    #[error("the system's random number generator failed")]
    NoRandom,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Purge (URLs, prefixes, keys; everything needs it too).
    Purge,
    /// Publish events through an ingest endpoint.
    Events,
    /// Read state: stats, metrics behind a token.
    Read,
    /// Everything, and reloads (certificates, config).
    Admin,
}

impl Scope {
    /// Its name in config and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Purge => "purge",
            Scope::Events => "events",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    /// A scope from its name.
    pub fn parse(s: &str) -> Option<Scope> {
        Some(match s {
            "purge" => Scope::Purge,
            "events" => Scope::Events,
            "read" => Scope::Read,
            "admin" => Scope::Admin,
            _ => return None,
        })
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Purge => 1,
            Scope::Events => 2,
            Scope::Read => 4,
            Scope::Admin => 8,
        }
    }
}

/// A named token: the SHA-256 of its secret and its scopes.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    name: String,
    hash: [u8; 32],
    scopes: u8,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("scopes", &self.scope_names())
            .finish()
    }
}

/// The SHA-256 of a token's secret, in hex: what config keeps.
pub fn hash(secret: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        secret.as_bytes(),
    ))
}

/// A new random secret (32 bytes, hex), from the system's generator.
pub fn generate() -> Result<String, ApiTokenError> {
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| ApiTokenError::NoRandom)?;
    Ok(hex::encode(b))
}

impl ApiToken {
    /// A token named `name` whose secret hashes to `sha256` (64 hex digits), with `scopes`.
    pub fn new(name: &str, sha256: &str, scopes: &[Scope]) -> Result<ApiToken, ApiTokenError> {
        let bytes = hex::decode(sha256.trim()).map_err(|_| ApiTokenError::NotSha256)?;
        let hash: [u8; 32] = bytes.try_into().map_err(|_| ApiTokenError::NotSha256)?;
        Ok(ApiToken {
            name: name.to_string(),
            hash,
            scopes: scopes.iter().fold(0, |a, s| a | s.bit()),
        })
    }

    /// A token whose secret is given as such (an older single-token setting), with `scopes`.
    pub fn from_secret(name: &str, secret: &str, scopes: &[Scope]) -> ApiToken {
        let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
        let mut hash = [0u8; 32];
        hash.copy_from_slice(d.as_ref());
        ApiToken {
            name: name.to_string(),
            hash,
            scopes: scopes.iter().fold(0, |a, s| a | s.bit()),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it may do `scope` (`admin` may do everything).
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes & (scope.bit() | Scope::Admin.bit()) != 0
    }

    /// Its scopes' names.
    pub fn scope_names(&self) -> Vec<&'static str> {
        [Scope::Purge, Scope::Events, Scope::Read, Scope::Admin]
            .into_iter()
            .filter(|s| self.scopes & s.bit() != 0)
            .map(Scope::as_str)
            .collect()
    }
}

/// What [`ApiTokens::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No tokens are configured: the API is open (it listens on loopback, or the operator
    /// opted in).
    Open,
    /// This token, allowed.
    Allowed(String),
    /// No `Authorization: Bearer` given.
    Missing,
    /// A bearer that matches no configured token.
    Unknown,
    /// This token, without the scope.
    Forbidden(String),
}

impl Verdict {
    /// Who asked, for an audit record: the token's name, or what was wrong.
    pub fn actor(&self) -> &str {
        match self {
            Verdict::Open => "anonymous",
            Verdict::Allowed(n) | Verdict::Forbidden(n) => n,
            Verdict::Missing => "no token",
            Verdict::Unknown => "unknown token",
        }
    }

    /// The refusal of a request that asked for `scope`, as an HTTP status and a message:
    /// `401` without a known token (`where_tokens` says where tokens are configured), `403`
    /// for a token without the scope; `None` when allowed.
    pub fn refusal(&self, scope: Scope, where_tokens: &str) -> Option<(u16, String)> {
        match self {
            Verdict::Open | Verdict::Allowed(_) => None,
            Verdict::Missing | Verdict::Unknown => Some((
                401,
                format!(
                    "missing or unknown bearer token (Authorization: Bearer <token>, one of {where_tokens})"
                ),
            )),
            Verdict::Forbidden(name) => Some((
                403,
                format!(
                    "the token {name} does not have the {} scope",
                    scope.as_str()
                ),
            )),
        }
    }
}

/// The configured tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiTokens(Vec<ApiToken>);

impl ApiTokens {
    /// These tokens.
    pub fn new(tokens: Vec<ApiToken>) -> ApiTokens {
        ApiTokens(tokens)
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tokens.
    pub fn tokens(&self) -> &[ApiToken] {
        &self.0
    }

    /// The token an `Authorization` field value (`Bearer <secret>`) presents, if any matches.
    /// Every configured hash is compared, each in constant time.
    pub fn find(&self, authorization: Option<&str>) -> Option<&ApiToken> {
        let secret = authorization?.strip_prefix("Bearer ")?.trim();
        let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
        let mut found = None;
        for t in &self.0 {
            let diff = t
                .hash
                .iter()
                .zip(d.as_ref())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 && found.is_none() {
                found = Some(t);
            }
        }
        found
    }

    /// Whether a request with `authorization` may do `scope`.
    pub fn check(&self, authorization: Option<&str>, scope: Scope) -> Verdict {
        if self.0.is_empty() {
            return Verdict::Open;
        }
        if authorization.is_none_or(|a| !a.starts_with("Bearer ")) {
            return Verdict::Missing;
        }
        match self.find(authorization) {
            None => Verdict::Unknown,
            Some(t) if t.may(scope) => Verdict::Allowed(t.name.clone()),
            Some(t) => Verdict::Forbidden(t.name.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_by_their_hash_and_held_to_their_scopes() {
        let cms = "s3cret-cms-token";
        let ops = "s3cret-ops-token";
        let tokens = ApiTokens::new(vec![
            ApiToken::new("cms", &hash(cms), &[Scope::Purge, Scope::Events]).expect("token"),
            ApiToken::from_secret("ops", ops, &[Scope::Admin]),
        ]);
        let bearer = |s: &str| format!("Bearer {s}");
        assert_eq!(
            tokens.check(Some(&bearer(cms)), Scope::Purge),
            Verdict::Allowed("cms".into())
        );
        assert_eq!(
            tokens.check(Some(&bearer(cms)), Scope::Admin),
            Verdict::Forbidden("cms".into())
        );
        assert_eq!(
            tokens.check(Some(&bearer(ops)), Scope::Read),
            Verdict::Allowed("ops".into())
        );
        assert_eq!(
            tokens.check(Some(&bearer("guess")), Scope::Read),
            Verdict::Unknown
        );
        assert_eq!(tokens.check(None, Scope::Read), Verdict::Missing);
        assert_eq!(
            tokens.check(Some("Basic abc"), Scope::Read),
            Verdict::Missing
        );
        assert_eq!(
            ApiTokens::default().check(None, Scope::Admin),
            Verdict::Open
        );
        // Debug never prints the hash.
        let text = format!("{tokens:?}");
        assert!(
            text.contains("cms") && !text.contains(&hash(cms)[..16]),
            "{text}"
        );
    }

    #[test]
    fn refusals_say_401_without_a_known_token_and_403_without_the_scope() {
        let r = |v: Verdict| v.refusal(Scope::Purge, "[[api_tokens]]");
        assert_eq!(r(Verdict::Open), None);
        assert_eq!(r(Verdict::Allowed("cms".into())), None);
        let (status, msg) = r(Verdict::Missing).unwrap_or_default();
        assert_eq!(status, 401);
        assert!(msg.contains("[[api_tokens]]"), "{msg}");
        assert_eq!(r(Verdict::Unknown).map(|x| x.0), Some(401));
        let (status, msg) = r(Verdict::Forbidden("reader".into())).unwrap_or_default();
        assert_eq!(status, 403);
        assert!(msg.contains("reader") && msg.contains("purge"), "{msg}");
    }

    #[test]
    fn hashes_must_be_sha256_and_secrets_are_random() {
        assert!(ApiToken::new("x", "zz", &[Scope::Read]).is_err());
        assert!(ApiToken::new("x", "00ff", &[Scope::Read]).is_err());
        let (a, b) = (generate().expect("random"), generate().expect("random"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(hash("abc").len(), 64);
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Scope::parse("purge"), Some(Scope::Purge));
        assert_eq!(Scope::parse("root"), None);
    }
}
