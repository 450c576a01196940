//! The pipeline file: everything `sluice validate` does short of loading Wasm modules
//! (TOML, every query's fields, SQL planning, expression type checks, the module checks
//! with a stand-in that accepts every module).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// An empty folder the pipeline's relative paths resolve in.
fn base() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap().keep())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `sql = { file = ... }` reads the file it names: a device or FIFO that never ends
    // (stdin) would park the fuzzer, which is the user's own doing, not the host's.
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }
    if let Ok(mut pipeline) = sluice::pipeline::Pipeline::parse(text, &base().join("pipeline.toml"))
    {
        let _ = pipeline.check_modules(|_, _| Ok(()));
        let names: Vec<String> = pipeline.queries.iter().map(|q| q.name.clone()).collect();
        for q in &pipeline.queries {
            let _ = q.explain();
        }
        if let Some(name) = names.first() {
            let _ = pipeline.select(name);
        }
    }
});
