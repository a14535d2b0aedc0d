//! The environment as a settings source: which `PRESCIENT_*` variables are
//! settings, and which are someone else's.
//!
//! A variable is a setting when the rest of its name is a setting's key
//! path in upper case, levels joined by `__` (a single `_` belongs to key
//! names): `PRESCIENT_TICK` is `tick`, `PRESCIENT_ADMISSION__MAX_LEASES` is
//! `admission.max_leases`. Every key of the embedded `config/prescient.yaml`
//! can be set this way (it lists them all); no setting is a list.
//!
//! Other variables share the prefix without being ours: Kubernetes injects
//! `PRESCIENT_SERVICE_HOST`, `PRESCIENT_PORT`, `PRESCIENT_PORT_50051_TCP_ADDR`
//! … into every pod in the namespace of a Service named `prescient`; an app
//! beside the sidecar reads `PRESCIENT_ENDPOINT`; a `token_env` may name
//! `PRESCIENT_ADMIN_TOKEN`. Such a variable is set aside to be logged (by
//! name, never by value: it may hold a token) and does not stop the daemon.
//! Files stay strict: an unknown key there is an error.

use std::collections::BTreeSet;
use std::ffi::OsString;

use config::{ConfigError, Environment, Map};

/// What every settings variable starts with.
pub const PREFIX: &str = "PRESCIENT_";

/// The `PRESCIENT_*` variables of an environment, sorted out.
#[derive(Debug, Default, PartialEq)]
pub struct SettingsEnv {
    /// Variables that name a setting, with their values.
    pub settings: Map<String, String>,
    /// Variables with the prefix that name no setting, sorted, each with a
    /// hint when it looks like a misspelt setting.
    pub unused: Vec<String>,
}

impl SettingsEnv {
    /// Sorts `vars` against the keys of `defaults` (the embedded settings
    /// YAML, which has every key).
    pub fn sort(
        vars: impl IntoIterator<Item = (OsString, OsString)>,
        defaults: &str,
    ) -> Result<Self, ConfigError> {
        let known = variable_names(defaults)?;
        let mut sorted = Self::default();
        for (name, value) in vars {
            // A name that is not UTF-8 cannot be one of ours.
            let Ok(name) = name.into_string() else {
                continue;
            };
            if !name.starts_with(PREFIX) {
                continue;
            }
            if !known.contains(&name) {
                let hint = misspelt(&name, &known)
                    .map(|k| format!(" (did you mean {k}?)"))
                    .unwrap_or_default();
                sorted.unused.push(format!("{name}{hint}"));
                continue;
            }
            let value = value
                .into_string()
                .map_err(|_| ConfigError::Message(format!("{name}: value is not valid UTF-8")))?;
            sorted.settings.insert(name, value);
        }
        sorted.unused.sort();
        Ok(sorted)
    }

    /// The settings as a `config` source, layered between the files and
    /// the flags.
    pub fn source(&self) -> Environment {
        Environment::with_prefix(PREFIX.trim_end_matches('_'))
            .prefix_separator("_")
            .separator("__")
            .source(Some(self.settings.clone()))
    }

    /// `err` prefixed with the variable that set its key, when a variable
    /// did (and no flag in `flagged` overrode it): not every error of
    /// `config` says where a value came from.
    pub fn blame(&self, err: ConfigError, flagged: &[&str]) -> ConfigError {
        let key = match &err {
            ConfigError::Type { key: Some(k), .. } | ConfigError::At { key: Some(k), .. } => k,
            _ => return err,
        };
        let name = variable(key);
        if flagged.contains(&key.as_str()) || !self.settings.contains_key(&name) {
            return err;
        }
        ConfigError::Message(format!("{name}: {err}"))
    }
}

/// The variable of a key path: `admission.max_leases` ->
/// `PRESCIENT_ADMISSION__MAX_LEASES`.
pub fn variable(key: &str) -> String {
    format!("{PREFIX}{}", key.replace('.', "__").to_uppercase())
}

/// Every settings variable: one per leaf key of `defaults`.
fn variable_names(defaults: &str) -> Result<BTreeSet<String>, ConfigError> {
    fn walk(prefix: &str, value: &serde_norway::Value, out: &mut BTreeSet<String>) {
        match value {
            serde_norway::Value::Mapping(map) => {
                for (k, v) in map {
                    let Some(k) = k.as_str() else { continue };
                    let key = match prefix {
                        "" => k.to_owned(),
                        _ => format!("{prefix}.{k}"),
                    };
                    walk(&key, v, out);
                }
            }
            _ => {
                out.insert(variable(prefix));
            }
        }
    }
    let root: serde_norway::Value = serde_norway::from_str(defaults)
        .map_err(|e| ConfigError::Message(format!("embedded settings: {e}")))?;
    let mut names = BTreeSet::new();
    walk("", &root, &mut names);
    Ok(names)
}

/// The setting `name` was probably meant for: the same letters with the
/// underscores in other places (`PRESCIENT_ADMISSION_MAX_LEASES`), or in
/// lower case.
fn misspelt<'k>(name: &str, known: &'k BTreeSet<String>) -> Option<&'k str> {
    let letters = |s: &str| s.replace('_', "").to_uppercase();
    let want = letters(name);
    known
        .iter()
        .find(|k| letters(k) == want)
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: &str = "tick: 1s\nadmin_listen: x\nadmission:\n  max_leases: 5\n";

    fn sort(vars: &[(&str, &str)]) -> SettingsEnv {
        SettingsEnv::sort(vars.iter().map(|(k, v)| (k.into(), v.into())), DEFAULTS).unwrap()
    }

    #[test]
    fn nested_keys_are_joined_by_double_underscores() {
        assert_eq!(
            variable("admission.max_leases"),
            "PRESCIENT_ADMISSION__MAX_LEASES"
        );
        assert_eq!(variable("admin_listen"), "PRESCIENT_ADMIN_LISTEN");
        let names = variable_names(DEFAULTS).unwrap();
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            [
                "PRESCIENT_ADMIN_LISTEN",
                "PRESCIENT_ADMISSION__MAX_LEASES",
                "PRESCIENT_TICK"
            ]
        );
    }

    #[test]
    fn settings_are_kept_and_everything_else_with_the_prefix_is_set_aside() {
        let env = sort(&[
            ("PRESCIENT_TICK", "2s"),
            ("PRESCIENT_ADMISSION__MAX_LEASES", "7"),
            ("PRESCIENT_SERVICE_HOST", "10.96.0.10"),
            ("PRESCIENT_PORT", "tcp://10.96.0.10:50051"),
            ("PRESCIENT_ENDPOINT", "http://127.0.0.1:50051"),
            ("PRESCIENT_ADMISSION", "a section, not a setting"),
            ("HOME", "/root"),
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ]);
        let mut settings: Vec<_> = env.settings.keys().collect();
        settings.sort();
        assert_eq!(
            settings,
            ["PRESCIENT_ADMISSION__MAX_LEASES", "PRESCIENT_TICK"]
        );
        assert_eq!(
            env.unused,
            [
                "PRESCIENT_ADMISSION",
                "PRESCIENT_ENDPOINT",
                "PRESCIENT_PORT",
                "PRESCIENT_SERVICE_HOST"
            ]
        );
    }

    #[test]
    fn a_misspelt_setting_is_set_aside_with_a_hint() {
        let env = sort(&[
            ("PRESCIENT_ADMISSION_MAX_LEASES", "7"),
            ("PRESCIENT_tick", "2s"),
        ]);
        assert!(env.settings.is_empty());
        assert_eq!(
            env.unused,
            [
                "PRESCIENT_ADMISSION_MAX_LEASES (did you mean PRESCIENT_ADMISSION__MAX_LEASES?)",
                "PRESCIENT_tick (did you mean PRESCIENT_TICK?)"
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_setting_that_is_not_utf8_is_an_error_naming_it_and_anything_else_is_skipped() {
        use std::os::unix::ffi::OsStringExt;
        let bad = || OsString::from_vec(vec![0xff, 0xfe]);
        let err = SettingsEnv::sort([("PRESCIENT_TICK".into(), bad())], DEFAULTS).unwrap_err();
        assert!(err.to_string().contains("PRESCIENT_TICK"), "{err}");
        let env = SettingsEnv::sort(
            [("PRESCIENT_ENDPOINT".into(), bad()), (bad(), "x".into())],
            DEFAULTS,
        )
        .unwrap();
        assert_eq!(env.unused, ["PRESCIENT_ENDPOINT"]);
    }
}
