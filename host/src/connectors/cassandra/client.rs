//! A connection to the cluster: the driver's session on a Tokio runtime of its own (the engine
//! runs batches on plain threads; the driver needs a reactor for its connection pools), and
//! which errors are worth retrying.

use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::OpenSsl010Config;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::statement::Consistency;

use super::Connection;
use crate::error::Result;

/// The driver's session and the runtime its connections live on.
pub struct Client {
    runtime: tokio::runtime::Runtime,
    session: Session,
}

impl Client {
    /// Connects (reading the password secret at `secret_field`); `Err` carries the driver's or
    /// the server's message (a wrong password is the server's "Provided username ... are
    /// incorrect"), never the password.
    pub fn connect(
        c: &Connection,
        secret_field: &str,
    ) -> Result<std::result::Result<Client, String>> {
        let password = match &c.password {
            Some(p) => Some(p.read(secret_field)?),
            None => None,
        };
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-cassandra")
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => return Ok(Err(format!("starting the client's runtime: {e}"))),
        };
        let mut policy = DefaultPolicy::builder().token_aware(true);
        if let Some(dc) = &c.local_datacenter {
            policy = policy
                .prefer_datacenter(dc.clone())
                .permit_dc_failover(false);
        }
        let profile = ExecutionProfile::builder()
            .load_balancing_policy(policy.build())
            .request_timeout(Some(c.request_timeout))
            .build();
        let mut builder = SessionBuilder::new()
            .known_nodes(&c.contact_points)
            .connection_timeout(c.connect_timeout)
            .default_execution_profile_handle(profile.into_handle());
        if let (Some(user), Some(password)) = (&c.username, &password) {
            builder = builder.user(user, password.expose());
        }
        if let Some(ca) = &c.tls {
            match tls(ca.as_deref()) {
                Ok(config) => builder = builder.tls_context(Some(config)),
                Err(e) => return Ok(Err(e)),
            }
        }
        let connect_timeout = c.connect_timeout;
        let session = runtime.block_on(async move {
            // The driver retries unreachable nodes for a while; the user's timeout bounds it.
            match tokio::time::timeout(connect_timeout * 3, builder.build()).await {
                Ok(Ok(session)) => Ok(session),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no node answered within {:?}", connect_timeout * 3)),
            }
        });
        Ok(session.map(|session| Client { runtime, session }))
    }

    /// Runs `f` with the session, to its end, on the client's runtime.
    pub fn run<'s, F, T>(&'s self, f: impl FnOnce(&'s Session) -> F) -> T
    where
        F: std::future::Future<Output = T> + 's,
    {
        self.runtime.block_on(f(&self.session))
    }
}

/// OpenSSL's client defaults (peer certificates verified) with `ca` as the trusted roots, or
/// the system's. Host names are not checked: the driver connects to the addresses the
/// cluster reports for its nodes, and nodes' certificates seldom name those.
fn tls(ca: Option<&std::path::Path>) -> std::result::Result<OpenSsl010Config, String> {
    let mut builder = SslConnector::builder(SslMethod::tls_client())
        .map_err(|e| format!("setting up TLS: {e}"))?;
    if let Some(ca) = ca {
        builder
            .set_ca_file(ca)
            .map_err(|e| format!("sslRootCert {}: {e}", ca.display()))?;
    }
    Ok(OpenSsl010Config::new(builder))
}

/// The driver's consistency level named `name` (one of [`super::CONSISTENCY_LEVELS`]).
pub fn consistency(name: &str) -> Consistency {
    match name {
        "ANY" => Consistency::Any,
        "ONE" => Consistency::One,
        "TWO" => Consistency::Two,
        "THREE" => Consistency::Three,
        "QUORUM" => Consistency::Quorum,
        "ALL" => Consistency::All,
        "EACH_QUORUM" => Consistency::EachQuorum,
        "LOCAL_ONE" => Consistency::LocalOne,
        _ => Consistency::LocalQuorum,
    }
}

/// Whether a failed request may succeed when sent again: the cluster was overloaded, timed out,
/// lacked replicas for a moment, or the connection broke. Refusals (a bad statement, a wrong
/// type, no permission) are not.
pub fn retryable(e: &ExecutionError) -> bool {
    match e {
        ExecutionError::LastAttemptError(attempt) => match attempt {
            RequestAttemptError::DbError(db, _) => matches!(
                db,
                DbError::Overloaded
                    | DbError::ReadTimeout { .. }
                    | DbError::WriteTimeout { .. }
                    | DbError::Unavailable { .. }
                    | DbError::IsBootstrapping
                    | DbError::RateLimitReached { .. }
                    | DbError::ServerError
                    | DbError::TruncateError
            ),
            RequestAttemptError::BrokenConnectionError(_)
            | RequestAttemptError::UnableToAllocStreamId => true,
            _ => false,
        },
        ExecutionError::RequestTimeout(_) | ExecutionError::ConnectionPoolError(_) => true,
        _ => false,
    }
}

/// How long to wait before retry `attempt` (1, 2, ...): doubling from 100 ms, at most 5 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(5))
}
