//! Decoding bytes we did not produce with libraries that panic on some malformed input.
//!
//! arrow-ipc's schema reader unwraps optional flatbuffer fields (a schema message without
//! fields, a list without its child), and arrow-row documents that bytes it did not encode
//! "may panic" when decoded; neither has a validating alternative. What reaches them from a
//! guest (its declared schemas) or from a checkpoint (layouts' key schemas, stored keys)
//! goes through [`guarded`], which turns such a panic into `None`, so the caller reports an
//! error naming the module or file. The panic's own message is kept off stderr (the
//! caller's error says it better) by a panic hook that is silent only on a thread inside
//! [`guarded`] and otherwise defers to the hook it replaced.

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

/// Runs `decode` (a library decoder over untrusted bytes); `None` if it panicked.
pub fn guarded<T>(decode: impl FnOnce() -> T) -> Option<T> {
    install_quiet_hook();
    let outer = GUARDED.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(decode));
    GUARDED.with(|g| g.set(outer));
    result.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_none_and_a_value_passes() {
        assert_eq!(guarded(|| 7), Some(7));
        let none: Option<()> = guarded(|| panic!("a decoder's panic"));
        assert!(none.is_none());
        // The flag is cleared after a panic: later panics elsewhere are reported as usual.
        assert!(!GUARDED.with(Cell::get));
    }
}
