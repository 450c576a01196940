//! What the Kafka source and sink share about reaching a cluster: the bootstrap check that
//! turns "no broker answers" into an error naming the servers, before either side starts.
//!
//! librdkafka retries an unreachable broker forever and reports it only as a time-out of
//! whatever request came first (for an exactly-once sink, "initialising transactions ...
//! Timed out" after a minute), so the real cause never reaches the user. A short-lived probe
//! client with the query's own client options (TLS, SASL, ...) asks for cluster metadata within
//! `connectTimeout` and records what librdkafka said on the way.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;

/// How long a query waits for a bootstrap broker to answer unless `connectTimeout` says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Remembers the last errors librdkafka reported while probing (connection refused, name
/// resolution, TLS handshake, authentication).
#[derive(Default)]
struct ProbeContext {
    errors: Mutex<Vec<String>>,
}

impl ClientContext for ProbeContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // The probe's failures are reported in its error, not logged; but why a connection
        // failed (an SSL handshake, an authentication) reaches only the log, as `FAIL`.
        if fac == "FAIL"
            && matches!(
                level,
                RDKafkaLogLevel::Emerg
                    | RDKafkaLogLevel::Alert
                    | RDKafkaLogLevel::Critical
                    | RDKafkaLogLevel::Error
                    | RDKafkaLogLevel::Warning
            )
        {
            self.error(
                KafkaError::ClientCreation(String::new()),
                log_message
                    .rsplit_once(": ")
                    .map_or(log_message, |(_, m)| m),
            );
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        let line = if reason.is_empty() {
            error.to_string()
        } else {
            reason.to_owned()
        };
        if !errors.contains(&line) {
            errors.push(line);
        }
    }
}

impl ConsumerContext for ProbeContext {}

impl ProbeContext {
    /// Whether the broker refused the credentials (SASL), which retrying will not change.
    fn authentication_failed(&self) -> bool {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|e| e.contains("SASL authentication error") || e.contains("Authentication failed"))
    }
}

/// A `kafka.*` option for librdkafka: its value as written, or a secret read at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientValue {
    /// Written in the pipeline.
    Text(String),
    /// `{ env = "..." }` or `{ file = "..." }`.
    Secret(crate::secret::SecretSource),
}

/// Whether an option holds a secret, so that the pipeline must not write it out: passwords,
/// client secrets, a private key, JAAS or OAUTHBEARER configurations.
pub fn is_secret_option(option: &str) -> bool {
    let o = option.to_ascii_lowercase();
    o.contains("password")
        || o.contains("secret")
        || o == "ssl.key.pem"
        || o == "sasl.jaas.config"
        || o == "sasl.oauthbearer.config"
}

/// The options as librdkafka takes them, secrets read now (errors name the option, never the
/// value).
///
/// A TLS connection without `ssl.ca.location` (or `ssl.ca.pem`) gets `ssl.ca.location =
/// probe`: librdkafka's OpenSSL is built here, so its compiled-in CA directory is not the
/// system's; `probe` looks in the usual system places, so managed clusters with public
/// certificates work as with a system librdkafka.
pub fn resolve(options: &[(String, ClientValue)]) -> crate::error::Result<Vec<(String, String)>> {
    let mut resolved: Vec<(String, String)> = options
        .iter()
        .map(|(k, v)| {
            Ok((
                k.clone(),
                match v {
                    ClientValue::Text(t) => t.clone(),
                    ClientValue::Secret(s) => s.read(&format!("kafka.{k}"))?.expose().to_owned(),
                },
            ))
        })
        .collect::<crate::error::Result<_>>()?;
    let tls = resolved
        .iter()
        .any(|(k, v)| k == "security.protocol" && v.to_ascii_lowercase().contains("ssl"));
    let ca_given = resolved
        .iter()
        .any(|(k, _)| k == "ssl.ca.location" || k == "ssl.ca.pem");
    if tls && !ca_given {
        resolved.push(("ssl.ca.location".into(), "probe".into()));
    }
    Ok(resolved)
}

/// Checks that a broker at `bootstrap_servers` answers a metadata request within `timeout`,
/// using the same `client_options` the query's client will use.
///
/// The error says which servers were tried, for how long, and what librdkafka saw.
pub fn check_reachable(
    bootstrap_servers: &str,
    client_options: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap_servers)
        .set("enable.auto.commit", "false");
    for (k, v) in client_options {
        // Only the connection settings matter to the probe; producer- or consumer-only keys
        // would make a consumer refuse to start, so they are left out.
        if is_connection_option(k) {
            config.set(k, v);
        }
    }
    let probe: BaseConsumer<ProbeContext> = config
        .create_with_context(ProbeContext::default())
        .map_err(|e| format!("creating a Kafka client for {bootstrap_servers}: {e}"))?;
    // In slices, so that a refused authentication ends the wait at once: librdkafka would
    // retry it with backoff until the timeout, each attempt one more failed login at the
    // broker.
    let deadline = std::time::Instant::now() + timeout;
    let outcome = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match probe.fetch_metadata(None, left.min(Duration::from_millis(250))) {
            Ok(_) => break Ok(()),
            Err(e) => {
                let _ = probe.poll(Duration::ZERO);
                if left <= Duration::from_millis(250) || probe.context().authentication_failed() {
                    break Err(e);
                }
            }
        }
    };
    match outcome {
        Ok(()) => Ok(()),
        Err(e) => {
            // librdkafka queues its log lines (`log.queue`): serve them, so the message can
            // say why the connection failed (an SSL handshake, an authentication).
            let _ = probe.poll(Duration::from_millis(100));
            let seen = probe
                .context()
                .errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let seen = if seen.is_empty() {
                e.to_string()
            } else {
                seen.join("; ")
            };
            if probe.context().authentication_failed() {
                return Err(format!(
                    "the Kafka broker at bootstrap servers '{bootstrap_servers}' refused the login (librdkafka said: {seen}); check kafka.sasl.mechanism, kafka.sasl.username and the password"
                ));
            }
            Err(format!(
                "no Kafka broker answered at bootstrap servers '{bootstrap_servers}' within {} (asked for cluster metadata; librdkafka said: {seen}); check kafka.bootstrap.servers, that the brokers are running and reachable from here, and any kafka.security.protocol / kafka.sasl.* settings, or raise connectTimeout",
                humantime(timeout)
            ))
        }
    }
}

/// Client settings that shape the connection itself (and so matter to the probe).
pub fn is_connection_option(key: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "security.",
        "ssl.",
        "ssl_",
        "sasl.",
        "socket.",
        "broker.",
        "client.",
        "connections.",
        "reconnect.",
        "api.version",
        "enable.ssl",
        "resolve.",
        "debug",
    ];
    PREFIXES.iter().any(|p| key.starts_with(p))
}

fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_broker_is_named_within_the_timeout() {
        // Port 9 on loopback: nothing listens, so the connection is refused at once and the
        // probe gives up at its timeout.
        let started = std::time::Instant::now();
        let err = check_reachable("127.0.0.1:9", &[], Duration::from_millis(1500))
            .expect_err("nothing listens on port 9");
        assert!(started.elapsed() < Duration::from_secs(10), "{err}");
        assert!(err.contains("'127.0.0.1:9'"), "{err}");
        assert!(err.contains("within 1500 ms"), "{err}");
    }

    #[test]
    fn producer_only_options_are_not_given_to_the_probe() {
        assert!(!is_connection_option("linger.ms"));
        assert!(!is_connection_option("fetch.wait.max.ms"));
        assert!(is_connection_option("security.protocol"));
        assert!(is_connection_option("sasl.mechanism"));
    }
}
