//! Named shared memory: visibility, lifetime (crashes included), names.

mod common;

use std::io::ErrorKind;

use common::{foreign_object, hold, shm_exists, shm_name};
use mapview::MappedFile;

#[test]
fn opener_sees_creators_writes_and_the_other_way_round() {
    let name = shm_name("visible");
    let a = unsafe { MappedFile::create_shared(&name, 10_000) }.unwrap();
    let b = unsafe { MappedFile::open_shared(&name) }.unwrap();
    assert_eq!(b.capacity(), 10_000);
    assert_eq!(b.name(), Some(name.as_str()));
    assert!(b.view(..).unwrap().iter().all(|&x| x == 0), "zeroed");
    a.view_mut(5000..5003).unwrap().copy_from_slice(b"abc");
    assert_eq!(&b.view(5000..5003).unwrap()[..], b"abc");
    b.view_mut(9999..).unwrap()[0] = 9;
    assert_eq!(a.view(9999..).unwrap()[0], 9);
}

#[test]
fn named_map_disappears_with_its_last_handle() {
    let name = shm_name("lifetime");
    let a = unsafe { MappedFile::create_shared(&name, 4096) }.unwrap();
    let b = unsafe { MappedFile::open_shared(&name) }.unwrap();
    let view = b.view(..).unwrap();
    drop(a);
    drop(b);
    assert!(shm_exists(&name), "a live view keeps the map alive");
    unsafe { MappedFile::open_shared(&name) }.unwrap();
    drop(view);
    assert!(!shm_exists(&name));
    let err = unsafe { MappedFile::open_shared(&name) }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn creating_a_live_name_again_is_already_exists() {
    let name = shm_name("twice");
    let _a = unsafe { MappedFile::create_shared(&name, 4096) }.unwrap();
    let err = unsafe { MappedFile::create_shared(&name, 4096) }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
}

#[test]
fn a_leftover_that_nobody_holds_is_reaped() {
    let name = shm_name("leftover");
    std::fs::write(std::path::Path::new("/dev/shm").join(&name), b"stale").unwrap();
    let err = unsafe { MappedFile::open_shared(&name) }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(!shm_exists(&name));

    std::fs::write(std::path::Path::new("/dev/shm").join(&name), b"stale").unwrap();
    let map = unsafe { MappedFile::create_shared(&name, 100) }.unwrap();
    assert!(map.view(..).unwrap().iter().all(|&x| x == 0));
    drop(map);
    assert!(!shm_exists(&name));
}

#[test]
fn bad_names_and_missing_names_are_clear_errors() {
    let long = "x".repeat(201);
    for name in [
        "",
        ".",
        "..",
        "a/b",
        "with space",
        "ü",
        "nul\0",
        long.as_str(),
    ] {
        let err = unsafe { MappedFile::create_shared(name, 10) }.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name:?}");
        let err = unsafe { MappedFile::open_shared(name) }.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name:?}");
    }
    let ok = format!("{}{}", shm_name("n"), "x".repeat(150));
    assert!(ok.len() <= 200);
    drop(unsafe { MappedFile::create_shared(&ok, 10) }.unwrap());
    assert!(!shm_exists(&ok));

    let err = unsafe { MappedFile::open_shared(&shm_name("missing")) }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = unsafe { MappedFile::create_shared(&shm_name("zero"), 0) }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn named_map_is_private_to_its_user() {
    use std::os::unix::fs::PermissionsExt;
    let name = shm_name("mode");
    let _map = unsafe { MappedFile::create_shared(&name, 10) }.unwrap();
    let mode = std::fs::metadata(std::path::Path::new("/dev/shm").join(&name))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}

#[test]
fn racing_creators_and_droppers_never_leave_a_name_behind() {
    let name = shm_name("race");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..200 {
                    let created = unsafe { MappedFile::create_shared(&name, 64) };
                    let opened = unsafe { MappedFile::open_shared(&name) };
                    match (&created, &opened) {
                        (Err(e), _) => assert_eq!(e.kind(), ErrorKind::AlreadyExists),
                        (Ok(_), Err(e)) => panic!("open after create failed: {e}"),
                        (Ok(_), Ok(_)) => {}
                    }
                }
            });
        }
    });
    assert!(!shm_exists(&name));
}

fn remove(name: &str) {
    std::fs::remove_file(std::path::Path::new("/dev/shm").join(name)).unwrap();
}

#[test]
fn an_object_of_another_user_is_permission_denied_and_left_alone() {
    for (mode, held) in [(0o600, false), (0o666, true)] {
        let name = shm_name("foreign");
        let squatter = foreign_object(&name, mode, 4096, Some(65534));
        if held {
            hold(&squatter);
        }
        let err = unsafe { MappedFile::open_shared(&name) }.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        assert!(shm_exists(&name), "another user's object is left alone");
        remove(&name);
    }
}

#[test]
fn an_object_others_may_write_is_permission_denied() {
    for mode in [0o666, 0o620, 0o604] {
        let name = shm_name("open-mode");
        let object = foreign_object(&name, mode, 4096, None);
        hold(&object);
        let err = unsafe { MappedFile::open_shared(&name) }.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::PermissionDenied,
            "mode {mode:o}: {err}"
        );
        remove(&name);
    }
}

#[test]
fn a_live_empty_object_is_invalid_data_at_once() {
    let name = shm_name("empty");
    let object = foreign_object(&name, 0o600, 0, None);
    hold(&object);
    let err = unsafe { MappedFile::open_shared(&name) }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains("size 0"), "{err}");
    remove(&name);
}

#[test]
fn a_name_squatted_by_another_user_is_not_taken_over() {
    let name = shm_name("squat-create");
    drop(foreign_object(&name, 0o600, 4096, Some(65534)));
    let err = unsafe { MappedFile::create_shared(&name, 4096) }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(shm_exists(&name), "another user's object is left alone");
    remove(&name);
}

#[test]
fn a_replaced_object_is_left_to_its_new_owner() {
    let name = shm_name("replaced");
    let old = unsafe { MappedFile::create_shared(&name, 4096) }.unwrap();
    old.view_mut(..3).unwrap().copy_from_slice(b"old");
    // Another process of the user removes the name and makes its own object.
    remove(&name);
    let new = unsafe { MappedFile::create_shared(&name, 8192) }.unwrap();
    let opened = unsafe { MappedFile::open_shared(&name) }.unwrap();
    assert_eq!(opened.capacity(), 8192, "the name leads to the new object");
    assert_eq!(&old.view(..3).unwrap()[..], b"old", "the old map lives on");
    drop(old);
    assert!(
        shm_exists(&name),
        "dropping the old map left the new one alone"
    );
    drop((new, opened));
    assert!(!shm_exists(&name));
}
