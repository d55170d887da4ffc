//! [`Exclusive`]: a `Send` value made `Sync` by never sharing it.

/// A value reachable only through `&mut`, so that a shared reference to it
/// is useless and sharing one across threads harmless (as the
/// `sync_wrapper` crate's `SyncWrapper`, or std's unstable `Exclusive`).
/// It lets the crate's promise hold that every public type is `Sync`, for
/// bodies and futures that are only `Send`.
pub(crate) struct Exclusive<T>(T);

impl<T> Exclusive<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(value)
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

// SAFETY: `Sync` lets threads share `&Exclusive<T>`. Nothing reaches the
// `T` through a shared reference: the only accessor, `get_mut`, takes
// `&mut self`, and there are no trait impls that read the value. So no two
// threads ever touch it at once; moving it to another thread needs
// `T: Send`, which the bound asks for.
unsafe impl<T: Send> Sync for Exclusive<T> {}
