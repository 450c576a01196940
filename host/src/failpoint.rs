//! Named pause points for crash tests.
//!
//! The crash-recovery tests must kill the process at exact places — after the offsets write,
//! half-way through the sink, before the commit — not at a random time. With
//! `SLUICE_FAILPOINTS=after-offsets:3,mid-sink:5` in the environment, reaching point
//! `after-offsets` in batch 3 prints `sluice-failpoint: after-offsets batch 3` on stderr and
//! parks the thread forever; the test sees the line and sends SIGKILL. Without the variable
//! each check is one relaxed atomic load.
//!
//! The points, in batch order: `before-offsets`, `after-offsets`, `mid-sink` (file sink,
//! after its first data file), `after-sink`, `after-commit`.

use std::io::Write;
use std::sync::OnceLock;

fn armed() -> &'static [(String, u64)] {
    static POINTS: OnceLock<Vec<(String, u64)>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var("SLUICE_FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|p| {
                let (name, batch) = p.trim().split_once(':')?;
                Some((name.to_owned(), batch.parse().ok()?))
            })
            .collect()
    })
}

/// Parks the calling thread forever (or until a line on stdin, see below) if `name` is armed
/// for `batch_id`.
pub fn hit(name: &str, batch_id: u64) {
    let points = armed();
    if points.is_empty() {
        return;
    }
    if points.iter().any(|(n, b)| n == name && *b == batch_id) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "sluice-failpoint: {name} batch {batch_id}");
        let _ = err.flush();
        drop(err);
        // `SLUICE_FAILPOINTS_RESUME=stdin`: go on once the test writes a line (to let another
        // process act while this one is paused at an exact place).
        if std::env::var("SLUICE_FAILPOINTS_RESUME").as_deref() == Ok("stdin") {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            return;
        }
        loop {
            std::thread::park();
        }
    }
}
