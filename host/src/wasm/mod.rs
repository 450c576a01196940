//! The WebAssembly runtime: user code as components, called once per micro-batch.
//!
//! - One shared wasmtime [`Engine`] per process (two if some step asks for fuel metering,
//!   which changes the generated code), with epoch interruption driven by a ticker thread so
//!   a call can be stopped at its deadline.
//! - Compiled components are cached on disk, keyed by the component's sha256 and the engine's
//!   compatibility hash (wasmtime version and settings), so a restart does not recompile.
//! - Each transform step and foreachBatch sink owns one instance, reused across batches and
//!   re-created after a trap.
//! - Guests get WASI with nothing in it — no preopened directories, no environment, no
//!   sockets — plus the imports of their world; a handler reaches only what the pipeline
//!   grants it ([`handler`]).
//!
//! How Arrow data crosses the boundary is described in `sluice_guest_sdk::abi` and
//! ARCHITECTURE.md: one copy of each buffer in (the canonical ABI's), one out.

pub mod aggregate;
pub mod bindings;
pub mod function;
pub mod handler;
pub mod processor;
pub mod spec;
pub mod stderr;
pub mod transform;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_schema::SchemaRef;
use sha2::Digest;
use tracing::{debug, info};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::wasm::spec::GuestLimits;
use sluice_guest_sdk::abi;

/// How often the epoch advances; deadlines are enforced to within one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// A wasmtime engine with its compile cache.
pub struct WasmRuntime {
    engine: Engine,
    cache_dir: Option<PathBuf>,
    fuel: bool,
    /// Components loaded in this process, by the sha256 of their bytes: a second query or a
    /// swap to the same module neither re-reads, re-hashes nor re-deserialises it.
    components: Mutex<HashMap<String, Component>>,
    /// The digest of a file as last seen (path, size, modification time), so loading a known
    /// file does not hash it again.
    file_digests: Mutex<HashMap<(PathBuf, u64, std::time::SystemTime), String>>,
}

/// The process's runtime (with or without fuel metering).
pub fn runtime(fuel: bool) -> Result<&'static WasmRuntime> {
    static PLAIN: OnceLock<std::result::Result<WasmRuntime, String>> = OnceLock::new();
    static FUELED: OnceLock<std::result::Result<WasmRuntime, String>> = OnceLock::new();
    let cell = if fuel { &FUELED } else { &PLAIN };
    cell.get_or_init(|| WasmRuntime::new(fuel).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::Wasm {
            module: "<runtime>".into(),
            message: e.clone(),
        })
}

/// Where compiled components are cached: `$SLUICE_CACHE_DIR`, else `$XDG_CACHE_HOME/sluice`,
/// else `~/.cache/sluice`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SLUICE_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("sluice"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("sluice"))
}

impl WasmRuntime {
    fn new(fuel: bool) -> Result<Self> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(fuel);
        let engine = Engine::new(&config).map_err(|e| Error::Wasm {
            module: "<runtime>".into(),
            message: format!("creating the wasmtime engine: {e:#}"),
        })?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| Error::io("starting the epoch ticker", "wasm-epoch", e))?;
        Ok(WasmRuntime {
            engine,
            cache_dir: cache_dir(),
            fuel,
            components: Mutex::new(HashMap::new()),
            file_digests: Mutex::new(HashMap::new()),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads a component file, compiling it or taking the compiled form from the cache.
    pub fn load(&self, path: &Path) -> Result<Component> {
        let module = path.display().to_string();
        let key = file_key(path);
        if let Some(key) = &key {
            let digest = lock(&self.file_digests).get(key).cloned();
            if let Some(c) = digest.and_then(|d| lock(&self.components).get(&d).cloned()) {
                return Ok(c);
            }
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io("reading module", path, e))?;
        let digest = hex(&sha2::Sha256::digest(&bytes));
        if let Some(key) = key {
            lock(&self.file_digests).insert(key, digest.clone());
        }
        self.load_digested(&module, &bytes, digest)
    }

    /// Records that the file at `path` holds the bytes of `digest` (hex), as the registry
    /// knows for the blobs it writes, so loading it later needs no hashing.
    pub fn remember_file(&self, path: &Path, digest: &str) {
        if let Some(key) = file_key(path) {
            lock(&self.file_digests).insert(key, digest.to_owned());
        }
    }

    /// Compiles (or loads from the cache) a component given as bytes; `module` names it in errors.
    pub fn load_bytes(&self, module: &str, bytes: &[u8]) -> Result<Component> {
        let digest = hex(&sha2::Sha256::digest(bytes));
        self.load_digested(module, bytes, digest)
    }

    fn load_digested(&self, module: &str, bytes: &[u8], digest: String) -> Result<Component> {
        if let Some(c) = lock(&self.components).get(&digest) {
            return Ok(c.clone());
        }
        let component = self.compile_or_deserialize(module, bytes, &digest)?;
        lock(&self.components).insert(digest, component.clone());
        Ok(component)
    }

    fn compile_or_deserialize(
        &self,
        module: &str,
        bytes: &[u8],
        digest: &str,
    ) -> Result<Component> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        let cached = self
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("{digest}-{:016x}.cwasm", h.finish())));
        if let Some(path) = &cached
            && path.exists()
        {
            // SAFETY: the file is one this runtime wrote with `Component::serialize` for an
            // engine with the same compatibility hash (part of the name); deserialising is
            // only unsafe for files of unknown origin.
            match unsafe { Component::deserialize_file(&self.engine, path) } {
                Ok(c) => {
                    debug!(module, cache = %path.display(), "loaded precompiled component");
                    return Ok(c);
                }
                Err(e) => debug!(module, error = %e, "cached component unusable; recompiling"),
            }
        }
        if !is_component(bytes) {
            let what = if bytes.starts_with(b"\0asm") {
                "a core WebAssembly module, not a component; build it for wasm32-wasip2 (or run `wasm-tools component new`)"
            } else {
                "not a WebAssembly component"
            };
            return Err(Error::Wasm {
                module: module.into(),
                message: what.into(),
            });
        }
        let started = std::time::Instant::now();
        let component = Component::new(&self.engine, bytes).map_err(|e| Error::Wasm {
            module: module.into(),
            message: format!("does not compile: {e:#}"),
        })?;
        info!(
            module,
            ms = started.elapsed().as_millis() as u64,
            fuel = self.fuel,
            "compiled component"
        );
        if let Some(path) = cached {
            let stored = component
                .serialize()
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
                    }
                    write_atomic(&path, &b).map_err(|e| e.to_string())
                });
            if let Err(e) = stored {
                debug!(module, error = %e, "could not cache the compiled component");
            }
        }
        Ok(component)
    }
}

/// Locks a mutex, carrying on if another thread panicked while holding it (the maps hold
/// no invariant a panic could break).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What identifies a file's content cheaply: path, size, modification time.
fn file_key(path: &Path) -> Option<(PathBuf, u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((path.to_path_buf(), meta.len(), meta.modified().ok()?))
}

/// Whether `bytes` start like a component (`\0asm`, then layer 1 in the version field); a
/// core module has layer 0.
fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes.starts_with(b"\0asm") && bytes[6..8] == [1, 0]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything a guest's imports can reach, kept in its store.
pub struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// "query 'q' step 'parse' (module m.wasm)", for logs and errors.
    label: Arc<str>,
    memory_cap: u64,
    memory_wanted: Option<u64>,
    last_error_log: Option<String>,
    /// Log lines written by the current call, and those dropped past the cap.
    log_lines: u32,
    /// Transform: the schema `emit` must match, what was emitted, and the first bad emit.
    output_schema: Option<SchemaRef>,
    emitted: Vec<RecordBatch>,
    emit_error: Option<String>,
    /// Transform: the whole input of the current call, which `rows.emit-rows` takes rows
    /// and columns from (the guest itself got only the columns it reads).
    input: Option<RecordBatch>,
    /// What the current call may still hand the host (emits, handler writes).
    emit_budget: EmitBudget,
    /// Handler: what the pipeline grants.
    grants: Option<handler::Grants>,
    /// The end of what the guest wrote to stderr (an uncaught exception's traceback).
    stderr: stderr::StderrTail,
}

impl GuestState {
    fn new(label: Arc<str>, limits: &GuestLimits, grants: Option<handler::Grants>) -> Self {
        // No preopens, no environment, no arguments, no sockets: nothing ambient.
        let stderr = stderr::StderrTail::default();
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        GuestState {
            wasi,
            stderr,
            table: ResourceTable::new(),
            label,
            memory_cap: limits.max_memory,
            memory_wanted: None,
            last_error_log: None,
            log_lines: 0,
            output_schema: None,
            emitted: Vec::new(),
            emit_error: None,
            input: None,
            emit_budget: EmitBudget::default(),
            grants,
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for GuestState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_cap {
            self.memory_wanted = Some(desired as u64);
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes exceeded",
                self.memory_cap
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

// The arrow interface only defines types.
impl bindings::transformer::sluice::pipeline::arrow::Host for GuestState {}

impl bindings::transformer::sluice::pipeline::log::Host for GuestState {
    fn write(
        &mut self,
        level: bindings::transformer::sluice::pipeline::log::Level,
        message: String,
    ) {
        use bindings::transformer::sluice::pipeline::log::Level;
        self.log_lines = self.log_lines.saturating_add(1);
        if self.log_lines > MAX_LOG_LINES_PER_CALL {
            if self.log_lines == MAX_LOG_LINES_PER_CALL + 1 {
                tracing::warn!(
                    guest = &*self.label,
                    "more than {MAX_LOG_LINES_PER_CALL} log lines in one call: the rest of this call's are dropped"
                );
            }
            return;
        }
        let message = guest_text(&message).into_owned();
        let guest = &*self.label;
        match level {
            Level::Trace => tracing::trace!(guest, "{message}"),
            Level::Debug => tracing::debug!(guest, "{message}"),
            Level::Info => tracing::info!(guest, "{message}"),
            Level::Warn => tracing::warn!(guest, "{message}"),
            Level::Error => {
                tracing::error!(guest, "{message}");
                self.last_error_log = Some(message);
            }
        }
    }
}

/// What each kind of guest needs to be linked: how to add its world's imports, and the
/// world and SDK feature named when a module does not fit.
pub(crate) struct WorldLink {
    /// "a transform step", "a foreachBatch handler", "an aggregate".
    pub what: &'static str,
    /// The WIT world, e.g. `sluice:pipeline/transformer`.
    pub world: &'static str,
    /// The guest SDK feature that builds that world.
    pub feature: &'static str,
    /// Adds the world's imports to the linker.
    pub add: fn(&mut Linker<GuestState>) -> wasmtime::Result<()>,
}

/// Loads (or takes from the cache) the component at `module`, links WASI and the world's
/// imports, and type-checks its imports; the world's exports are checked by the caller's
/// bindings `Pre::new`. Errors name the module (`label`) and what to change.
pub(crate) fn prepare(
    module: &Path,
    limits: &GuestLimits,
    label: &str,
    link: &WorldLink,
) -> Result<(
    &'static WasmRuntime,
    wasmtime::component::InstancePre<GuestState>,
)> {
    let err = |message: String| Error::Wasm {
        module: label.to_owned(),
        message,
    };
    let runtime = runtime(limits.fuel.is_some())?;
    let component = runtime.load(module)?;
    check_package(runtime.engine(), &component).map_err(err)?;
    let pre = link_component(runtime.engine(), &component, link).map_err(err)?;
    Ok((runtime, pre))
}

/// Refuses a component built against another version of the WIT package than this host's
/// ([`WIT_PACKAGE`]; for 0.x the minor version is the breaking one), saying how to rebuild.
pub fn check_package(engine: &Engine, component: &Component) -> std::result::Result<(), String> {
    let version = |p: &str| {
        p.rsplit_once('@')
            .and_then(|(_, v)| semver::Version::parse(v).ok())
    };
    let Some(host) = version(WIT_PACKAGE) else {
        return Ok(());
    };
    for p in package_versions(engine, component) {
        let compatible = version(&p)
            .is_some_and(|v| v.major == host.major && (host.major > 0 || v.minor == host.minor));
        if !compatible {
            return Err(format!(
                "it implements {p}, and this host speaks {WIT_PACKAGE}: rebuild it against the guest SDK of this release (`sluice module build` in its crate, or `cargo build --release --target wasm32-wasip2` with sluice-guest-sdk {})",
                env!("CARGO_PKG_VERSION")
            ));
        }
    }
    Ok(())
}

/// Links WASI and `link`'s world imports for `component`, checking its imports' types.
fn link_component(
    engine: &Engine,
    component: &Component,
    link: &WorldLink,
) -> std::result::Result<wasmtime::component::InstancePre<GuestState>, String> {
    let mut linker = base_linker(engine).map_err(|e| format!("linking WASI: {e:#}"))?;
    (link.add)(&mut linker).map_err(|e| format!("linking: {e:#}"))?;
    linker.instantiate_pre(component).map_err(|e| {
        format!(
            "cannot be {}: it does not implement the {} world: {e:#} (is it built with sluice-guest-sdk's `{}` feature?)",
            link.what, link.world, link.feature
        )
    })
}

/// The WIT package every guest world belongs to, with the version this host speaks.
pub const WIT_PACKAGE: &str = "sluice:pipeline@0.2.0";

/// Checks a linked component's exports against one world's bindings.
type ExportCheck = fn(wasmtime::component::InstancePre<GuestState>) -> wasmtime::Result<()>;

/// Which of our worlds a component implements: the worlds it fits, and for each one it does
/// not, why (a missing or mismatched import or export). Used to validate uploads.
pub fn worlds_of(engine: &Engine, component: &Component) -> (Vec<&'static str>, Vec<String>) {
    let mut fits = Vec::new();
    let mut why_not = Vec::new();
    let checks: [(&WorldLink, ExportCheck); 5] = [
        (&transform::LINK, |pre| {
            bindings::transformer::TransformerPre::new(pre).map(|_| ())
        }),
        (&handler::LINK, |pre| {
            bindings::handler::HandlerPre::new(pre).map(|_| ())
        }),
        (&aggregate::LINK, |pre| {
            bindings::aggregator::AggregatorPre::new(pre).map(|_| ())
        }),
        (&processor::LINK, |pre| {
            bindings::processor::KeyedProcessorPre::new(pre).map(|_| ())
        }),
        (&function::LINK, |pre| {
            bindings::function::FunctionPre::new(pre).map(|_| ())
        }),
    ];
    for (link, check) in checks {
        match link_component(engine, component, link).and_then(|pre| {
            check(pre).map_err(|e| format!("does not implement the {} world: {e:#}", link.world))
        }) {
            Ok(()) => fits.push(link.world),
            Err(e) => why_not.push(format!("{}: {e}", link.world)),
        }
    }
    (fits, why_not)
}

/// The `sluice:pipeline` package versions a component's exports name (normally one).
pub fn package_versions(engine: &Engine, component: &Component) -> Vec<String> {
    let mut versions: Vec<String> = component
        .component_type()
        .exports(engine)
        .filter_map(|(name, _)| {
            let rest = name.strip_prefix("sluice:pipeline/")?;
            Some(match rest.split_once('@') {
                Some((_, v)) => format!("sluice:pipeline@{v}"),
                None => "sluice:pipeline (unversioned)".to_owned(),
            })
        })
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

/// The error for a component whose exports do not match its world.
pub(crate) fn world_mismatch(label: &str, link: &WorldLink, e: wasmtime::Error) -> Error {
    Error::Wasm {
        module: label.to_owned(),
        message: format!(
            "does not implement the {} world: {e:#} (build it with sluice-guest-sdk's `{}` feature)",
            link.world, link.feature
        ),
    }
}

/// A linker with WASI (empty) and the log import, for either world.
fn base_linker(engine: &Engine) -> wasmtime::Result<Linker<GuestState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Ok(linker)
}

/// A store for one instance: the guest's state (with what the pipeline grants it), the
/// memory cap, and the deadline armed for the first call (`init`).
fn new_store(
    engine: &Engine,
    label: Arc<str>,
    limits: &GuestLimits,
    grants: Option<handler::Grants>,
) -> Result<Store<GuestState>> {
    let mut store = Store::new(engine, GuestState::new(label, limits, grants));
    store.limiter(|s| s as &mut dyn ResourceLimiter);
    begin_call(&mut store, limits)?;
    Ok(store)
}

/// What a guest's `init` returns: its value, an error message (a refused config), or a trap.
type InitResult<T> = wasmtime::Result<std::result::Result<T, String>>;

/// Starts a guest: a store (with `grants` for a handler), an instance, and its `init` call.
/// Errors name the module and say whether instantiation failed, `init` refused `config_of`'s
/// config, or `init` trapped (and why, in the pipeline author's terms).
pub(crate) fn start_guest<I, T>(
    engine: &Engine,
    label: Arc<str>,
    limits: &GuestLimits,
    grants: Option<handler::Grants>,
    config_of: &str,
    instantiate: impl FnOnce(&mut Store<GuestState>) -> wasmtime::Result<I>,
    init: impl FnOnce(&I, &mut Store<GuestState>) -> InitResult<T>,
) -> Result<(Store<GuestState>, I, T)> {
    let mut store = new_store(engine, label.clone(), limits, grants)?;
    let err = |message: String| Error::Wasm {
        module: label.to_string(),
        message,
    };
    let instance = instantiate(&mut store).map_err(|e| {
        err(format!(
            "failed to instantiate: {}",
            explain(&e, store.data(), limits)
        ))
    })?;
    match init(&instance, &mut store) {
        Ok(Ok(value)) => Ok((store, instance, value)),
        Ok(Err(msg)) => Err(err(format!(
            "init refused {config_of}'s config: {}",
            guest_text(&msg)
        ))),
        Err(e) => Err(err(format!("init {}", explain(&e, store.data(), limits)))),
    }
}

/// Prepares one call: arms the deadline (and fuel) and forgets what the previous call emitted
/// or logged.
fn begin_call(store: &mut Store<GuestState>, limits: &GuestLimits) -> Result<()> {
    let ticks = limits
        .timeout
        .as_nanos()
        .div_ceil(EPOCH_TICK.as_nanos())
        .max(1) as u64;
    store.set_epoch_deadline(ticks);
    if let Some(fuel) = limits.fuel {
        store.set_fuel(fuel).map_err(|e| Error::Wasm {
            module: store.data().label.to_string(),
            message: format!("setting fuel: {e}"),
        })?;
    }
    let s = store.data_mut();
    s.emitted.clear();
    s.emit_error = None;
    s.last_error_log = None;
    s.stderr.take();
    s.log_lines = 0;
    // The floors; a call that knows its input sets a budget relative to it.
    s.emit_budget = EmitBudget::for_call(limits, 0, 0);
    Ok(())
}

/// Explains why a call failed in words a pipeline author can act on.
fn explain(err: &wasmtime::Error, state: &GuestState, limits: &GuestLimits) -> String {
    // An import that trapped the guest on purpose (`output.emit` past its budget) said why.
    if let Some(why) = &state.emit_error {
        return why.clone();
    }
    if let Some(wanted) = state.memory_wanted {
        return format!(
            "exceeded its memory limit of {} (tried to grow to {}); raise maxMemory or process less per batch",
            human_bytes(limits.max_memory),
            human_bytes(wanted)
        );
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            return format!(
                "ran past its deadline of {:?} and was stopped; raise timeout or fix the guest",
                limits.timeout
            );
        }
        Some(Trap::OutOfFuel) => {
            return format!("ran out of fuel ({} units)", limits.fuel.unwrap_or(0));
        }
        _ => {}
    }
    // A guest that printed why it gave up (a Python traceback): that, not the wasm frames.
    let printed = state.stderr.take();
    if !printed.is_empty() {
        return format!("trapped; its stderr ends with:\n{printed}");
    }
    match &state.last_error_log {
        Some(msg) => format!("trapped after logging: {} ({err})", msg.replace('\n', " ")),
        None => format!("trapped: {err:#}"),
    }
}

/// `1.5 MiB`-style sizes for messages.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} bytes")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Decodes batches a guest hands over, caching decoded schemas by their bytes.
#[derive(Default)]
pub(crate) struct SchemaCache(HashMap<Vec<u8>, SchemaRef>);

impl SchemaCache {
    pub(crate) fn get(&mut self, bytes: &[u8]) -> std::result::Result<SchemaRef, String> {
        if let Some(s) = self.0.get(bytes) {
            return Ok(s.clone());
        }
        let schema = crate::schema::decode_ipc_schema(bytes)
            .map_err(|e| format!("not an Arrow IPC schema: {e}"))?;
        self.0.insert(bytes.to_vec(), schema.clone());
        Ok(schema)
    }
}

/// What one guest call may hand the host, in rows and bytes, through `output.emit` and
/// `sinks.write`: the guest's memory cap bounds one batch, not how many it sends, so without
/// this a guest emitting in a loop makes the host hold everything until its deadline.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EmitBudget {
    max_rows: u64,
    max_bytes: u64,
    rows: u64,
    bytes: u64,
    /// Whether the limits are the step's own (`maxEmitRows`/`maxEmitBytes`).
    configured: (bool, bool),
    /// Files written and HTTP requests sent in this call.
    ops: u64,
}

/// The most files a handler may write, and HTTP requests it may send, in one call.
pub(crate) const MAX_IO_OPS_PER_CALL: u64 = 10_000;

/// The longest HTTP response body a handler receives.
pub(crate) const MAX_HTTP_RESPONSE_BYTES: u64 = 64 << 20;

/// The most log lines one call writes to the host's log; later ones are counted, not written.
pub(crate) const MAX_LOG_LINES_PER_CALL: u32 = 1_000;

/// The longest guest text (an error, a log line) the host keeps.
pub(crate) const MAX_GUEST_TEXT: usize = 4096;

/// A guest's text cut to [`MAX_GUEST_TEXT`] bytes (at a character boundary), saying how much
/// was cut: a guest cannot make the host hold or log a message of any size.
pub(crate) fn guest_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_GUEST_TEXT {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = MAX_GUEST_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!(
        "{}… ({} more bytes cut)",
        &text[..end],
        text.len() - end
    ))
}

/// Floors and ceilings of the default budget.
const EMIT_MIN_ROWS: u64 = 1_000_000;
const EMIT_MIN_BYTES: u64 = 64 << 20;
const EMIT_MAX_ROWS: u64 = 1 << 30;
const EMIT_MAX_BYTES: u64 = 4 << 30;

impl EmitBudget {
    /// The budget of a call on an input of `rows` rows and `bytes` bytes: 64× the rows (at
    /// least a million) and 16× the bytes (at least 64 MiB), at most 1 G rows and 4 GiB —
    /// or the step's `maxEmitRows` / `maxEmitBytes`.
    pub(crate) fn for_call(limits: &GuestLimits, rows: u64, bytes: u64) -> EmitBudget {
        EmitBudget {
            max_rows: limits
                .max_emit_rows
                .unwrap_or_else(|| rows.saturating_mul(64).clamp(EMIT_MIN_ROWS, EMIT_MAX_ROWS)),
            max_bytes: limits.max_emit_bytes.unwrap_or_else(|| {
                bytes
                    .saturating_mul(16)
                    .clamp(EMIT_MIN_BYTES, EMIT_MAX_BYTES)
            }),
            rows: 0,
            bytes: 0,
            configured: (
                limits.max_emit_rows.is_some(),
                limits.max_emit_bytes.is_some(),
            ),
            ops: 0,
        }
    }

    /// Takes `bytes` a handler hands the host's disk or network (`what`: "files.write-file",
    /// "an HTTP request body") and one operation, or says which limit that passes.
    pub(crate) fn take_io(&mut self, bytes: u64, what: &str) -> std::result::Result<(), String> {
        self.ops += 1;
        if self.ops > MAX_IO_OPS_PER_CALL {
            return Err(format!(
                "{what}: more than {MAX_IO_OPS_PER_CALL} files written and HTTP requests sent in one call"
            ));
        }
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > self.max_bytes {
            return Err(format!(
                "{what}: handed the host more than {} in one call ({}); raise maxEmitBytes if that is intended",
                human_bytes(self.max_bytes),
                if self.configured.1 {
                    "the step's limit"
                } else {
                    "the default, relative to the input"
                }
            ));
        }
        Ok(())
    }

    /// Takes what a batch from the guest costs, or says which limit it passes.
    pub(crate) fn take(
        &mut self,
        batch: &bindings::transformer::sluice::pipeline::arrow::BatchResult,
    ) -> std::result::Result<(), String> {
        self.take_counted(u64::from(batch.num_rows), batch_bytes(batch))
    }

    /// Takes `rows` rows of `bytes` bytes the host will hold for the guest, or says which
    /// limit that passes.
    pub(crate) fn take_counted(
        &mut self,
        rows: u64,
        bytes: u64,
    ) -> std::result::Result<(), String> {
        self.rows = self.rows.saturating_add(rows);
        self.bytes = self.bytes.saturating_add(bytes);
        let default = |own: bool| {
            if own {
                "the step's limit"
            } else {
                "the default, relative to the input"
            }
        };
        if self.rows > self.max_rows {
            return Err(format!(
                "handed the host more than {} rows in one call ({}); raise maxEmitRows if that is intended",
                self.max_rows,
                default(self.configured.0)
            ));
        }
        if self.bytes > self.max_bytes {
            return Err(format!(
                "handed the host more than {} in one call ({}); raise maxEmitBytes if that is intended",
                human_bytes(self.max_bytes),
                default(self.configured.1)
            ));
        }
        Ok(())
    }
}

/// The bytes of a batch a guest handed over (its buffers and bitmaps).
pub(crate) fn batch_bytes(
    batch: &bindings::transformer::sluice::pipeline::arrow::BatchResult,
) -> u64 {
    batch
        .nodes
        .iter()
        .map(|n| {
            n.validity.as_ref().map_or(0, |v| v.len() as u64)
                + n.buffers.iter().map(|b| b.len() as u64).sum::<u64>()
        })
        .sum()
}

/// Turns an owned batch from the guest into a validated `RecordBatch` (no copy of buffers).
pub(crate) fn batch_from_guest(
    schema: &SchemaRef,
    batch: bindings::transformer::sluice::pipeline::arrow::BatchResult,
) -> std::result::Result<RecordBatch, String> {
    let nodes = batch.nodes.into_iter().map(|n| abi::NodeOwned {
        len: n.len,
        offset: n.offset,
        null_count: n.null_count,
        validity: n.validity.map(Buffer::from_vec),
        buffers: n.buffers.into_iter().map(Buffer::from_vec).collect(),
        num_children: n.num_children,
    });
    batch_from_nodes(schema, batch.num_rows, nodes)
}

/// Rebuilds a batch of `schema` from a guest's array nodes and validates all of it (offsets,
/// lengths, UTF-8, bitmaps). Arrow asserts some of this by panicking (an offsets buffer not
/// a whole number of offsets long), so the rebuild runs guarded: a malformed batch is an
/// error, whatever part of Arrow noticed.
pub fn batch_from_nodes(
    schema: &SchemaRef,
    num_rows: u32,
    nodes: impl IntoIterator<Item = abi::NodeOwned>,
) -> std::result::Result<RecordBatch, String> {
    match crate::untrusted::guarded(|| abi::to_batch(schema, num_rows, nodes, true)) {
        Ok(batch) => batch.map_err(|e| e.to_string()),
        Err(panic) => Err(format!(
            "a malformed batch: Arrow refused one of its buffers ({panic})"
        )),
    }
}

/// Calls `f` with `batch` as WIT nodes borrowing its buffers.
pub(crate) fn with_guest_batch<R>(
    batch: &RecordBatch,
    f: impl FnOnce(bindings::transformer::sluice::pipeline::arrow::BatchParam<'_>) -> R,
) -> Result<R> {
    use bindings::transformer::sluice::pipeline::arrow::{ArrayNodeParam, BatchParam};
    let data = abi::batch_data(batch);
    let nodes =
        abi::flatten_all(&data).map_err(|e| Error::data("handing a batch to a guest", e))?;
    let params: Vec<ArrayNodeParam<'_>> = nodes
        .iter()
        .map(|n| ArrayNodeParam {
            len: n.len,
            offset: n.offset,
            null_count: n.null_count,
            validity: n.validity.as_deref(),
            buffers: &n.buffers,
            num_children: n.num_children,
        })
        .collect();
    let num_rows = u32::try_from(batch.num_rows())
        .map_err(|_| Error::data("handing a batch to a guest", "over 4G rows"))?;
    Ok(f(BatchParam {
        num_rows,
        nodes: &params,
    }))
}
