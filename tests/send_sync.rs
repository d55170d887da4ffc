//! Compile-time checks that the public types can cross threads, as the crate
//! docs promise.

use mapview::pipe::{PipeReader, PipeWriter};
use mapview::{
    Access, Chunks, MapOptions, MappedFile, StreamOptions, StreamStats, Tail, View, ViewMut,
    ViewStream,
};

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send_sync_unpin<T: Send + Sync + Unpin>() {}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<MappedFile>();
    assert_send_sync::<MapOptions>();
    assert_send_sync::<Access>();
    assert_send_sync::<View>();
    assert_send_sync::<ViewMut>();
    assert_send_sync::<StreamOptions>();
    assert_send_sync::<StreamStats>();
}

#[test]
fn async_types_are_send_sync_and_unpin() {
    assert_send_sync_unpin::<ViewStream>();
    assert_send_sync_unpin::<Chunks>();
    assert_send_sync_unpin::<Tail>();
    assert_send_sync_unpin::<PipeReader>();
    assert_send_sync_unpin::<PipeWriter>();
}

#[cfg(feature = "http")]
#[test]
fn http_types_are_send_and_sync() {
    use mapview::http::{NotFound, ResponseBody, ResponseFuture, ServeDir, ServeFile};
    assert_send_sync::<ServeDir>();
    assert_send_sync::<ServeDir<ServeFile>>();
    assert_send_sync::<ServeFile>();
    assert_send_sync::<NotFound>();
    assert_send_sync_unpin::<ResponseBody>();
    assert_send_sync_unpin::<ResponseFuture>();
}
