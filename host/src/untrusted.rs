//! Decoding bytes we did not produce with libraries that panic on some malformed input.
//!
//! arrow-ipc's schema reader unwraps optional flatbuffer fields (a schema message without
//! fields, a list without its child), and arrow-row documents that bytes it did not encode
//! "may panic" when decoded; neither has a validating alternative. What reaches them from a
//! guest (its declared schemas) or from a checkpoint (layouts' key schemas, stored keys)
//! goes through [`guarded`], which turns such a panic into an error carrying the panic's
//! message, so the caller reports it naming the module or file. The panic is not also
//! printed to stderr: a panic hook stays silent on a thread inside [`guarded`] and otherwise
//! defers to the hook it replaced.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside [`guarded`] now.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Installs, once, the hook that is silent while a thread runs a guarded decoder.
fn install_quiet_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs `decode` (a library decoder over untrusted bytes); if it panicked, the panic's
/// message as the error.
pub fn guarded<T>(decode: impl FnOnce() -> T) -> Result<T, String> {
    install_quiet_hook();
    let outer = GUARDED.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(decode));
    GUARDED.with(|g| g.set(outer));
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "the decoder panicked".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_its_message_and_a_value_passes() {
        assert_eq!(guarded(|| 7), Ok(7));
        let failed: Result<(), String> = guarded(|| panic!("a decoder's panic at {}", 3));
        assert_eq!(failed, Err("a decoder's panic at 3".to_owned()));
        // The flag is cleared after a panic: later panics elsewhere are reported as usual.
        assert!(!GUARDED.with(Cell::get));
    }
}
