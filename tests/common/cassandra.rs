//! A Cassandra-protocol server for tests: kassandra's in-memory CQL engine served as a process
//! of its own (`tests/servers/cassandra`, built from source here), with Cassandra's password
//! authentication; the DataStax Python driver (`cassandra-driver`, installed by
//! `scripts/test.sh`) as the independent client that creates tables and reads rows back.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use super::repo;

/// The user the server accepts.
pub const USER: &str = "sluice";
/// Its password.
pub const PASSWORD: &str = "cql-s3cret";

/// A server for one test.
pub struct Cassandra {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// Builds the server once per test binary (its own workspace and target folder, so it never
/// waits on the build the tests run under) and returns the executable.
fn server_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo().join("target"))
                .join("servers");
            let out = Command::new("cargo")
                .args([
                    "build",
                    "--quiet",
                    "--release",
                    "--locked",
                    "--manifest-path",
                ])
                .arg(repo().join("tests/servers/cassandra/Cargo.toml"))
                .arg("--target-dir")
                .arg(&target)
                .output()
                .expect("running cargo");
            assert!(
                out.status.success(),
                "building the Cassandra test server failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            target.join("release/sluice-cassandra-test-server")
        })
        .clone()
}

impl Cassandra {
    /// Starts a server that asks for [`USER`] and [`PASSWORD`], on a free port.
    pub fn start() -> Cassandra {
        Self::start_on(0)
    }

    /// The same on `port` (0: a free one).
    pub fn start_on(port: u16) -> Cassandra {
        let mut child = Command::new(server_binary())
            .args([
                "--port",
                &port.to_string(),
                "--user",
                USER,
                "--password",
                PASSWORD,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the Cassandra test server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the server said {line:?}"));
        Cassandra { child, port }
    }

    /// `127.0.0.1:PORT`, as a pipeline's `contactPoints` names it.
    pub fn contact_point(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs CQL statements with the Python driver; a `SELECT`'s rows come back as JSON objects
    /// (values as the driver gives them; timestamps, uuids and decimals as text).
    pub fn cql(&self, statements: &[&str]) -> Vec<serde_json::Value> {
        const CLIENT: &str = r#"
import json, sys
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import RoundRobinPolicy
# One node, no token ring to be aware of (kassandra reports no partitioner).
profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy())
cluster = Cluster(["127.0.0.1"], port=int(sys.argv[1]), protocol_version=4,
                  auth_provider=PlainTextAuthProvider(sys.argv[2], sys.argv[3]),
                  schema_metadata_enabled=False, token_metadata_enabled=False,
                  execution_profiles={EXEC_PROFILE_DEFAULT: profile}, connect_timeout=20)
session = cluster.connect()
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    for row in session.execute(line):
        print(json.dumps(row._asdict(), default=str, sort_keys=True))
cluster.shutdown()
"#;
        let mut child = Command::new("python3")
            .args(["-c", CLIENT, &self.port.to_string(), USER, PASSWORD])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 with cassandra-driver (scripts/test.sh installs it)");
        let mut stdin = child.stdin.take().unwrap();
        for s in statements {
            writeln!(stdin, "{}", s.replace('\n', " ")).unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the Python driver failed on {statements:?}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Stops the server (its data is gone with it: kassandra keeps it in memory).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Cassandra {
    fn drop(&mut self) {
        self.stop();
    }
}
