//! Compile-time checks that the public types can cross threads.

use mapview::{Access, MapOptions, MappedFile, View, ViewMut};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<MappedFile>();
    assert_send_sync::<MapOptions>();
    assert_send_sync::<Access>();
    assert_send_sync::<View>();
    assert_send_sync::<ViewMut>();
}
