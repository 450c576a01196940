//! An S3-compatible server for tests: moto's server (PyPI `moto[server]`, installed by
//! `scripts/test.sh`) on a free port, and a plain HTTP client for it (moto accepts unsigned
//! requests), so what Sluice wrote is read back by something other than Sluice's own
//! `object_store` client.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::free_port;

/// A running moto server.
pub struct S3Server {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl S3Server {
    /// Starts `python3 -m moto.server` and waits until it answers HTTP.
    pub fn start() -> S3Server {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m moto.server (pip install 'moto[server]')");
        let mut server = S3Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if ureq::get(&server.url("/")).call().is_ok() {
                break;
            }
            assert!(
                !matches!(server.child.try_wait(), Ok(Some(_))),
                "moto's server exited; is moto[server] installed?"
            );
            assert!(Instant::now() < deadline, "moto's server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Creates a bucket whose objects anyone may read (a bucket policy), so the plain client
    /// below reads what Sluice wrote with its credentials.
    pub fn create_bucket(&self, bucket: &str) {
        ureq::put(&self.url(&format!("/{bucket}")))
            .send_empty()
            .unwrap();
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
        );
        ureq::put(&self.url(&format!("/{bucket}?policy")))
            .header("Content-Type", "application/json")
            .send(policy.as_bytes())
            .unwrap();
    }

    /// Writes an object.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        ureq::put(&self.url(&format!("/{bucket}/{}", encode_key(key))))
            .send(bytes)
            .unwrap();
    }

    /// An object's bytes, or `None` if there is none.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        match ureq::get(&self.url(&format!("/{bucket}/{}", encode_key(key)))).call() {
            Ok(mut r) => Some(r.body_mut().read_to_vec().unwrap()),
            Err(ureq::Error::StatusCode(404)) => None,
            Err(e) => panic!("GET {bucket}/{key}: {e}"),
        }
    }

    /// The keys under `prefix`, sorted (ListObjectsV2, every page).
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = ureq::get(&self.url(&format!("/{bucket}")))
                .query("list-type", "2")
                .query("prefix", prefix);
            if let Some(t) = &token {
                req = req.query("continuation-token", t);
            }
            let body = req.call().unwrap().body_mut().read_to_string().unwrap();
            keys.extend(between_all(&body, "<Key>", "</Key>").map(unescape));
            token = between_all(&body, "<NextContinuationToken>", "</NextContinuationToken>")
                .next()
                .map(unescape);
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        keys
    }

    /// The data files a Sluice file sink committed under `prefix`, read through its commit
    /// log (`_sluice_metadata/N`, listing the files relative to the output directory).
    pub fn committed_files(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let log = format!("{prefix}/_sluice_metadata/");
        let mut entries: Vec<(u64, String)> = self
            .list(bucket, &log)
            .into_iter()
            .filter_map(|k| Some((k.strip_prefix(&log)?.parse().ok()?, k)))
            .collect();
        entries.sort();
        let mut files = Vec::new();
        for (_, key) in entries {
            let entry: serde_json::Value =
                serde_json::from_slice(&self.get(bucket, &key).unwrap()).unwrap();
            for f in entry["files"].as_array().unwrap() {
                files.push(format!("{prefix}/{}", f.as_str().unwrap()));
            }
        }
        files
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A key as a URL path: bytes other than unreserved ones and `/` percent-encoded.
fn encode_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn between_all<'a>(text: &'a str, open: &'a str, close: &'a str) -> impl Iterator<Item = &'a str> {
    text.split(open)
        .skip(1)
        .filter_map(move |rest| rest.split_once(close).map(|(v, _)| v))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The environment that points Sluice's S3 client at `server`.
pub fn env(server: &S3Server) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".into(), server.url("")),
        ("AWS_ALLOW_HTTP".into(), "true".into()),
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
    ]
}

/// A TCP forwarder on its own port in front of a server, which a test can take down and bring
/// back on the same port: the store becomes unreachable (refused connections, cut transfers)
/// while its data stays.
pub struct Proxy {
    /// The port clients connect to.
    pub port: u16,
    target: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts forwarding `127.0.0.1:port` (a free one) to `127.0.0.1:target`.
    pub fn start(target: u16) -> Proxy {
        let mut p = Proxy {
            port: free_port(),
            target,
            up: Arc::new(AtomicBool::new(false)),
            open: Arc::default(),
            acceptor: None,
        };
        p.up();
        p
    }

    /// Listens again (after [`Proxy::down`]).
    pub fn up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.up.store(true, Ordering::SeqCst);
        let (up, open, target) = (self.up.clone(), self.open.clone(), self.target);
        self.acceptor = Some(std::thread::spawn(move || {
            for client in listener.incoming() {
                if !up.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut list = open.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                drop(list);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        }));
    }

    /// Stops listening and cuts every open connection.
    pub fn down(&mut self) {
        self.up.store(false, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag and drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
    }
}
