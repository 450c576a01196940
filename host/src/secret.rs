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

#[cfg(test)]
mod tests {
    use super::*;

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
