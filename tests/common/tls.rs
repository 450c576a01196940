//! Test certificates, made with the openssl command-line tool: TLS servers (PostgreSQL,
//! stunnel in front of the Kafka broker) present them, clients trust the CA.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A CA (`ca.crt`) and a server certificate for 127.0.0.1 signed by it (`server.crt`,
/// `server.key`), made in `dir` with the openssl tool.
pub fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=sluice test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}

/// stunnel (Debian's stunnel4) accepting TLS on 127.0.0.1:`port` with `certs`' server
/// certificate and forwarding plain TCP to `to`; killed when dropped.
pub struct TlsProxy(Child);

impl TlsProxy {
    pub fn start(certs: &std::path::Path, port: u16, to: &str) -> TlsProxy {
        let conf = certs.join("stunnel.conf");
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\n[proxy]\naccept = 127.0.0.1:{port}\nconnect = {to}\n\
                 cert = {}\nkey = {}\n",
                certs.join("server.crt").display(),
                certs.join("server.key").display()
            ),
        )
        .unwrap();
        let child = Command::new("stunnel")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("stunnel is installed by scripts/test.sh");
        // Ready when it accepts connections.
        let deadline = Instant::now() + super::TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "stunnel did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsProxy(child)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
