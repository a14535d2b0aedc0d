//! Who may act for which tenant: bearer tokens mapped to tenants, from a
//! file the daemon settings name (`auth.tokens_file`). Off when no file is
//! set (the sidecar default, on loopback). Tokens are never logged and not
//! even kept: the table holds their SHA-256 digests, and a presented token
//! is found by its digest in one lookup (what a lookup's timing could tell
//! is a digest's prefix, which says nothing of any token); a caller is known
//! by the token's `name`.
//!
//! ```yaml
//! tokens:
//!   - name: checkout-api          # shown in logs and errors, not secret
//!     token: "…"                  # or token_env: CHECKOUT_TOKEN
//!     tenants: [checkout]
//!   - name: ops
//!     token_env: OPS_TOKEN
//!     admin: true                 # any tenant, and every forecast
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// A token's SHA-256.
type Digest = [u8; 32];

fn digest(token: &str) -> Digest {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: Vec<TokenSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenSpec {
    name: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    tenants: BTreeSet<String>,
    #[serde(default)]
    admin: bool,
}

/// A known caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    tenants: BTreeSet<String>,
    pub admin: bool,
}

impl Caller {
    /// Whether this caller may act for `tenant`.
    pub fn may_use(&self, tenant: &str) -> bool {
        self.admin || self.tenants.contains(tenant)
    }

    /// `Ok` if this caller may act for `tenant`, else why not.
    pub fn permit(&self, tenant: &str) -> Result<(), AuthError> {
        if self.may_use(tenant) {
            Ok(())
        } else {
            Err(AuthError::Denied(format!(
                "tenant: caller {:?} may not act for tenant {:?}",
                self.name,
                crate::echo::Echo(tenant)
            )))
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token, or one nobody issued: UNAUTHENTICATED.
    #[error("{0}")]
    Unauthenticated(String),
    /// A known caller acting for a tenant it may not: PERMISSION_DENIED.
    #[error("{0}")]
    Denied(String),
}

/// The token table, by digest.
pub struct Auth {
    callers: HashMap<Digest, Caller>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the digests.
        let mut names: Vec<_> = self.callers.values().map(|c| &c.name).collect();
        names.sort();
        write!(f, "Auth({names:?})")
    }
}

impl Auth {
    /// Reads the tokens file; `env` resolves `token_env` names (settings
    /// owns the environment).
    pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let origin = path.display();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("{origin}: cannot read: {e}"))?;
        let file: TokensFile =
            serde_norway::from_str(&text).map_err(|e| format!("{origin}: {e}"))?;
        let mut callers: HashMap<Digest, Caller> = HashMap::new();
        // Which entry holds each token so far: one token under two names
        // would make the caller whichever entry came last.
        let mut holders: HashMap<Digest, (usize, String)> = HashMap::new();
        for (i, spec) in file.tokens.into_iter().enumerate() {
            let path = format!("{origin}: tokens[{i}]");
            let token = match (&spec.token, &spec.token_env) {
                (Some(t), None) => t.clone(),
                (None, Some(var)) => {
                    env(var).ok_or_else(|| format!("{path}.token_env: {var} is not set"))?
                }
                _ => return Err(format!("{path}: give exactly one of token, token_env")),
            };
            if token.len() < 16 {
                return Err(format!(
                    "{path}: the token of {:?} is shorter than 16 characters",
                    spec.name
                ));
            }
            if spec.tenants.is_empty() && !spec.admin {
                return Err(format!(
                    "{path}.tenants: {:?} may act for no tenant",
                    spec.name
                ));
            }
            let key = digest(&token);
            if let Some((j, holder)) = holders.get(&key) {
                return Err(format!(
                    "{path}: {:?} has the same token as tokens[{j}] {holder:?}; \
                     give each caller its own token",
                    spec.name
                ));
            }
            holders.insert(key, (i, spec.name.clone()));
            callers.insert(
                key,
                Caller {
                    name: spec.name,
                    tenants: spec.tenants,
                    admin: spec.admin,
                },
            );
        }
        if callers.is_empty() {
            return Err(format!("{origin}: tokens: at least one token is required"));
        }
        Ok(Self { callers })
    }

    /// The caller presenting `authorization` (the header's value).
    pub fn identify(&self, authorization: Option<&str>) -> Result<&Caller, AuthError> {
        let Some(header) = authorization else {
            return Err(AuthError::Unauthenticated(
                "authorization: a bearer token is required".into(),
            ));
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                AuthError::Unauthenticated("authorization: expected \"Bearer <token>\"".into())
            })?;
        // One lookup by digest, then the digests compared in constant time
        // (the map's own comparison may stop at the first differing byte).
        let presented = digest(token);
        self.callers
            .get_key_value(&presented)
            .filter(|(known, _)| bool::from(known.ct_eq(&presented)))
            .map(|(_, caller)| caller)
            .ok_or_else(|| AuthError::Unauthenticated("authorization: unknown token".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(yaml: &str) -> Result<Auth, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        std::fs::write(&path, yaml).unwrap();
        Auth::load(&path, |var| {
            (var == "OPS").then(|| "ops-token-0123456789".to_owned())
        })
    }

    const TOKENS: &str = "tokens:\n  - { name: shop, token: shop-token-0123456789, tenants: [checkout] }\n  \
                          - { name: ops, token_env: OPS, admin: true }\n";

    #[test]
    fn callers_are_known_by_token_and_limited_to_their_tenants() {
        let a = auth(TOKENS).unwrap();
        let shop = a.identify(Some("Bearer shop-token-0123456789")).unwrap();
        assert_eq!(shop.name, "shop");
        assert_eq!(shop.permit("checkout"), Ok(()));
        assert!(matches!(
            shop.permit("search"),
            Err(AuthError::Denied(m)) if m.starts_with("tenant: caller \"shop\"")
        ));
        let ops = a.identify(Some("Bearer ops-token-0123456789")).unwrap();
        assert!(ops.admin && ops.permit("search").is_ok());
        for bad in [
            None,
            Some("shop-token-0123456789"),
            Some("Bearer nope"),
            Some("Bearer "),
        ] {
            assert!(
                matches!(a.identify(bad), Err(AuthError::Unauthenticated(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_token_files_are_refused_with_a_reason() {
        for (yaml, reason) in [
            ("tokens: []\n", "at least one token"),
            (
                "tokens:\n  - { name: a, token: short, tenants: [x] }\n",
                "shorter than 16",
            ),
            (
                "tokens:\n  - { name: a, token_env: NOPE, tenants: [x] }\n",
                "NOPE is not set",
            ),
            (
                "tokens:\n  - { name: a, token: abcdefghijklmnopq }\n",
                "may act for no tenant",
            ),
            (
                "tokens:\n  - { name: a, token: abcdefghijklmnopq, tenant: [x] }\n",
                "unknown field",
            ),
            (
                "tokens:\n  - { name: a, token: abcdefghijklmnopq, tenants: [x] }\n  \
                 - { name: b, token: abcdefghijklmnopq, tenants: [y] }\n",
                "tokens[1]: \"b\" has the same token as tokens[0] \"a\"",
            ),
        ] {
            let err = auth(yaml).unwrap_err();
            assert!(err.contains(reason), "{err}");
        }
    }

    #[test]
    fn debug_output_never_shows_tokens() {
        let a = auth(TOKENS).unwrap();
        let shown = format!("{a:?}");
        assert!(
            !shown.contains("token-0123456789") && shown.contains("shop"),
            "{shown}"
        );
    }
}
