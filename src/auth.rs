//! Who may act for which tenant: bearer tokens mapped to tenants, from a
//! file the daemon settings name (`auth.tokens_file`). Off when no file is
//! set (the sidecar default, on loopback). Tokens are compared in constant
//! time and never logged; a caller is known by the token's `name`.
//!
//! ```yaml
//! tokens:
//!   - name: checkout-api          # shown in logs and errors, not secret
//!     token: "…"                  # or token_env: CHECKOUT_TOKEN
//!     tenants: [checkout]
//!   - name: ops
//!     token_env: PRESCIENT_ADMIN_TOKEN
//!     admin: true                 # any tenant, and every forecast
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde::Deserialize;
use subtle::ConstantTimeEq;

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

/// The token table.
pub struct Auth {
    entries: Vec<(Vec<u8>, Caller)>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens.
        let names: Vec<_> = self.entries.iter().map(|(_, c)| &c.name).collect();
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
        let mut entries: Vec<(Vec<u8>, Caller)> = Vec::new();
        // Which entry holds each token so far: one token under two names
        // would make the caller whichever entry came last.
        let mut holders: HashMap<String, usize> = HashMap::new();
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
            if let Some(&j) = holders.get(&token) {
                return Err(format!(
                    "{path}: {:?} has the same token as tokens[{j}] {:?}; \
                     give each caller its own token",
                    spec.name, entries[j].1.name
                ));
            }
            holders.insert(token.clone(), i);
            entries.push((
                token.into_bytes(),
                Caller {
                    name: spec.name,
                    tenants: spec.tenants,
                    admin: spec.admin,
                },
            ));
        }
        if entries.is_empty() {
            return Err(format!("{origin}: tokens: at least one token is required"));
        }
        Ok(Self { entries })
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
        // Compare against every entry, in constant time each, so the time
        // taken says nothing about which token came close.
        let mut found = None;
        for (secret, caller) in &self.entries {
            if bool::from(secret.as_slice().ct_eq(token.as_bytes())) {
                found = Some(caller);
            }
        }
        found.ok_or_else(|| AuthError::Unauthenticated("authorization: unknown token".into()))
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
