//! A thread-local setting overridden for the length of one closure: the pattern behind
//! [`super::first_order`] and [`super::with_conv_algorithm`].

use std::cell::Cell;
use std::thread::LocalKey;

/// Runs `f` with `key` set to `Some(value)` on this thread, then restores the previous value,
/// also when `f` panics. Nests.
pub(crate) fn with_override<T: Copy + 'static, R>(
    key: &'static LocalKey<Cell<Option<T>>>,
    value: T,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore<T: Copy + 'static>(&'static LocalKey<Cell<Option<T>>>, Option<T>);
    impl<T: Copy + 'static> Drop for Restore<T> {
        fn drop(&mut self) {
            self.0.with(|o| o.set(self.1));
        }
    }
    let _restore = Restore(key, key.with(|o| o.replace(Some(value))));
    f()
}
