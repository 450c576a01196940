//! An Elasticsearch-compatible server for tests: `noida-db` (PyPI, pinned in
//! `scripts/test.sh`) serving only its Elasticsearch API on a free port, read back with plain
//! HTTP (`_count`, `_doc`, `_search`) as any client would.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server for one test.
pub struct Elasticsearch {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Elasticsearch {
    /// Starts `noida-db` and waits until `GET /` answers.
    pub fn start() -> Elasticsearch {
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let child = Command::new("noida-db")
            .args(["start", "--only", "elasticsearch", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--elasticsearch-port", &port.to_string()])
            .current_dir(dir.path())
            // The command is a Python launcher that starts the server as its child: a group
            // of their own, so stopping the group stops the server.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("noida-db is installed (scripts/test.sh installs it)");
        let es = Elasticsearch {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + super::TIMEOUT;
        while es.get("/").is_none() {
            assert!(Instant::now() < deadline, "noida-db did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        es
    }

    /// `GET path` as JSON, `None` when the server does not answer or answers an error.
    pub fn get(&self, path: &str) -> Option<serde_json::Value> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let mut resp = agent.get(format!("{}{path}", self.url)).call().ok()?;
        if resp.status().as_u16() >= 400 {
            return None;
        }
        serde_json::from_slice(&resp.body_mut().read_to_vec().ok()?).ok()
    }

    /// How many documents `index` holds (after a refresh, so every write is counted).
    pub fn count(&self, index: &str) -> u64 {
        let _ = self.get(&format!("/{index}/_refresh"));
        self.get(&format!("/{index}/_count"))
            .and_then(|v| v["count"].as_u64())
            .unwrap_or(0)
    }

    /// The `_source` of document `id` in `index`.
    pub fn doc(&self, index: &str, id: &str) -> Option<serde_json::Value> {
        self.get(&format!("/{index}/_doc/{id}"))
            .filter(|v| v["found"] == true)
            .map(|v| v["_source"].clone())
    }

    /// Every document of `index` (`_id`, `_source`), sorted by id.
    pub fn docs(&self, index: &str) -> Vec<(String, serde_json::Value)> {
        let _ = self.get(&format!("/{index}/_refresh"));
        let hits = self
            .get(&format!("/{index}/_search?size=10000"))
            .map(|v| v["hits"]["hits"].clone())
            .unwrap_or_default();
        let mut out: Vec<(String, serde_json::Value)> = hits
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| {
                (
                    h["_id"].as_str().unwrap_or_default().to_owned(),
                    h["_source"].clone(),
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Stops the server (a query writing to it then fails its batch).
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Elasticsearch {
    fn drop(&mut self) {
        self.stop();
    }
}
