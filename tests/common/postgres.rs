//! A PostgreSQL server for tests: `scripts/postgres-server.sh` (Debian's `postgresql`) on a
//! free port in a temporary directory, with password authentication; `psql` as the
//! independent client.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::repo;

/// The `sluice` user's password.
pub const PASSWORD: &str = "s3cret-pw";

/// A PostgreSQL server for one test binary.
pub struct Postgres {
    child: Child,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Postgres {
    /// Starts `scripts/postgres-server.sh` on a free port and waits until it answers.
    pub fn start() -> Postgres {
        Self::start_with(None)
    }

    /// The same, accepting only TLS connections with the certificate in `tls` when given.
    pub fn start_with(tls: Option<&Path>) -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let child = Self::spawn(dir.path(), port, tls);
        let mut pg = Postgres { child, port, dir };
        pg.await_ready();
        pg
    }

    fn spawn(dir: &Path, port: u16, tls: Option<&Path>) -> Child {
        Command::new("bash")
            .arg(repo().join("scripts/postgres-server.sh"))
            .arg(dir.join("pg"))
            .arg(port.to_string())
            .arg(PASSWORD)
            .args(tls)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Waits until the server accepts a query (pg_isready asks the server itself).
    fn await_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "1"])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            if ready.success() {
                return;
            }
            assert!(
                !matches!(self.child.try_wait(), Ok(Some(_))),
                "scripts/postgres-server.sh exited"
            );
            assert!(Instant::now() < deadline, "PostgreSQL did not start");
        }
    }

    /// Stops the server (a fast shutdown: open connections are cut) and waits for it.
    pub fn stop(&mut self) {
        self.signal_postmaster("-INT");
        let _ = self.child.wait();
    }

    /// Signals the server itself, by the pid in its `postmaster.pid` (the script's child may
    /// be `runuser`, which does not pass every signal on).
    fn signal_postmaster(&self, signal: &str) {
        let pid_file = self.dir.path().join("pg/data/postmaster.pid");
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned))
        {
            let _ = Command::new("kill").arg(signal).arg(pid.trim()).status();
        }
    }

    /// Starts it again on the same data and port.
    pub fn restart(&mut self) {
        self.child = Self::spawn(self.dir.path(), self.port, None);
        self.await_ready();
    }

    /// The sink's `url` for database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("host=127.0.0.1 port={} user=sluice dbname={db}", self.port)
    }

    /// Runs `sql` with psql (an independent client) and returns its unaligned output lines.
    pub fn psql(&self, db: &str, sql: &str) -> Vec<String> {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "sluice",
            ])
            .args(["-d", db, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// A fresh database.
    pub fn database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name.to_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.signal_postmaster("-INT");
        let _ = self.child.wait();
    }
}
