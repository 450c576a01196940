//! A module upload: the registry's checks of arbitrary bytes (name, version, size, that it
//! is a component of our worlds), as `POST /modules` and `sluice module push` run them. The
//! first byte picks the name and version; the rest is the module.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice::registry::Registry;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        // Compiled components are cached on disk: keep the fuzzer's out of the user's cache.
        // SAFETY: set once, before any thread of ours reads the environment.
        unsafe { std::env::set_var("SLUICE_CACHE_DIR", dir.join("cache")) };
        Registry::open(dir.join("modules"))
            .unwrap()
            .with_max_bytes(1 << 20)
    })
}

const NAMES: &[(&str, &str)] = &[
    ("step", "1.0.0"),
    ("Step", "1.0.0"),
    ("step", "1.0"),
    ("", "1.0.0"),
    ("../up", "1.0.0"),
    ("s", "1.0.0-rc.1+build"),
    ("s", "99999999999999999999.0.0"),
];

fuzz_target!(|data: &[u8]| {
    let [pick, module @ ..] = data else {
        return;
    };
    let _ = sluice::registry::guest_language(module);
    let (name, version) = NAMES[*pick as usize % NAMES.len()];
    if let Ok(info) = registry().push(name, version, module) {
        // A module the fuzzer made that passed every check: remove it so the registry
        // stays small over a long run.
        let _ = registry().remove(&info.name, &info.version, |_| None);
    }
});
