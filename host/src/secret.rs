//! Secrets a pipeline names but never holds: `password = { env = "PGPASSWORD" }` or
//! `password = { file = "/run/secrets/pg" }`. The pipeline file (which is echoed by
//! `sluice validate`, stored and listed by `sluice serve`, and checked into repositories) only
//! says where the secret is; the value is read when the connector opens, and its `Debug` and
//! `Display` print `***`, so it cannot reach a log, a progress record or an error by accident.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// How to write a secret in a pipeline, for the messages that refuse one written out.
pub const HOW_TO_WRITE: &str = "write it as { env = \"NAME\" } (an environment variable) or \
     { file = \"path\" }, so the pipeline file never holds the secret";

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of the `sluice` process.
    Env(String),
    /// A file (its contents, without a trailing newline).
    File(PathBuf),
}

/// A secret's value. Printing it prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Secret {
    /// The value, for the one place that hands it to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl SecretSource {
    /// Reads the secret; `field` (e.g. `sink.password`) names it in errors, which never
    /// include the value.
    pub fn read(&self, field: &str) -> Result<Secret> {
        match self {
            SecretSource::Env(name) => std::env::var(name).map(Secret).map_err(|_| Error::Data {
                context: field.to_owned(),
                message: format!(
                    "the environment variable {name} is not set (or not UTF-8) in the sluice process"
                ),
            }),
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_owned()))
                .map_err(|e| Error::Data {
                    context: field.to_owned(),
                    message: format!("cannot read the secret file {}: {e}", path.display()),
                }),
        }
    }

    /// Where it is, for listings: `env:NAME` or `file:PATH` (never the value).
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Env(name) => format!("env:{name}"),
            SecretSource::File(path) => format!("file:{}", path.display()),
        }
    }
}

/// A guest's `config` (a step's, a handler's, an aggregate's or a processor's), handed to its
/// `init` as JSON. Any value in it may be a secret written as `{ env = "NAME" }` or
/// `{ file = "path" }`: the JSON kept here, which plans, listings and errors may show, holds
/// only where each secret is; [`GuestConfig::resolve`] reads them when the guest starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GuestConfig {
    /// The config as written (each secret as its `{"env": NAME}` / `{"file": path}` table).
    value: serde_json::Value,
    /// Each secret: a JSON pointer into `value` (RFC 6901) and where its value is read from.
    secrets: Vec<(String, SecretSource)>,
}

impl From<serde_json::Value> for GuestConfig {
    /// A config without secrets.
    fn from(value: serde_json::Value) -> Self {
        GuestConfig {
            value,
            secrets: Vec::new(),
        }
    }
}

impl GuestConfig {
    /// A config whose values at `secrets` (JSON pointers into `value`) are read at start.
    pub fn with_secrets(value: serde_json::Value, secrets: Vec<(String, SecretSource)>) -> Self {
        GuestConfig { value, secrets }
    }

    /// The config as written, secrets as where they are read from: safe to show.
    pub fn shown(&self) -> &serde_json::Value {
        &self.value
    }

    /// The JSON text handed to the guest, each secret read now; `field` (e.g.
    /// `transform[0].config`) names a secret that cannot be read, never its value.
    pub fn resolve(&self, field: &str) -> Result<String> {
        if self.secrets.is_empty() {
            return Ok(self.value.to_string());
        }
        let mut value = self.value.clone();
        for (pointer, source) in &self.secrets {
            let name = format!("{field}{}", pointer.replace('/', "."));
            let secret = source.read(&name)?;
            if let Some(slot) = value.pointer_mut(pointer) {
                *slot = serde_json::Value::String(secret.expose().to_owned());
            }
        }
        Ok(value.to_string())
    }
}

/// Whether a config key names what is usually a credential (`password`, `apiKey`,
/// `auth_token`, `client-secret`): a plain value there is refused, as the pipeline file is
/// echoed, stored and listed. Words are split at `_`, `-`, `.` and lower-to-upper case.
pub fn looks_like_secret(key: &str) -> bool {
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if matches!(c, '_' | '-' | '.' | ' ') {
            words.push(std::mem::take(&mut word));
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower {
            words.push(std::mem::take(&mut word));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    words.push(word);
    words.iter().enumerate().any(|(i, w)| {
        matches!(
            w.as_str(),
            "password"
                | "passwd"
                | "pwd"
                | "secret"
                | "token"
                | "apikey"
                | "credential"
                | "credentials"
        ) || (w == "key" && i > 0 && matches!(words[i - 1].as_str(), "api" | "private" | "access"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_name_credentials_are_told_apart() {
        for key in [
            "password",
            "apiKey",
            "api_key",
            "API-KEY",
            "auth_token",
            "clientSecret",
            "privateKey",
            "Credentials",
        ] {
            assert!(looks_like_secret(key), "{key}");
        }
        for key in [
            "tokenizer",
            "max_tokens",
            "keyColumn",
            "key",
            "index",
            "monkey",
        ] {
            assert!(!looks_like_secret(key), "{key}");
        }
    }

    #[test]
    fn a_config_s_secrets_are_read_at_start_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k"), "s3cr3t\n").unwrap();
        let config = GuestConfig::with_secrets(
            serde_json::json!({"url": "http://x", "auth": {"key": {"file": "k"}}}),
            vec![(
                "/auth/key".to_owned(),
                SecretSource::File(dir.path().join("k")),
            )],
        );
        assert!(!format!("{config:?} {}", config.shown()).contains("s3cr3t"));
        let text = config.resolve("transform[0].config").unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["auth"]["key"], "s3cr3t");
        assert_eq!(json["url"], "http://x");
        let missing = GuestConfig::with_secrets(
            serde_json::json!({"token": {"env": "SLUICE_TEST_NO_SUCH_VARIABLE"}}),
            vec![(
                "/token".to_owned(),
                SecretSource::Env("SLUICE_TEST_NO_SUCH_VARIABLE".into()),
            )],
        )
        .resolve("sink.config")
        .unwrap_err()
        .to_string();
        assert!(missing.contains("sink.config.token"), "{missing}");
    }

    #[test]
    fn a_secret_prints_as_stars_and_is_read_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "hunter2\n").unwrap();
        let secret = SecretSource::File(file.clone())
            .read("sink.password")
            .unwrap();
        assert_eq!(secret.expose(), "hunter2");
        assert_eq!(format!("{secret} {secret:?}"), "*** ***");
        let missing = SecretSource::Env("SLUICE_TEST_NO_SUCH_VARIABLE".into())
            .read("sink.password")
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("SLUICE_TEST_NO_SUCH_VARIABLE"),
            "{missing}"
        );
        assert!(missing.contains("sink.password"), "{missing}");
        let unreadable = SecretSource::File(dir.path().join("nope"))
            .read("sink.password")
            .unwrap_err()
            .to_string();
        assert!(unreadable.contains("nope"), "{unreadable}");
    }
}
