//! Coherence and lifetime across processes: each test re-runs this test
//! binary as a child that maps the same file or name on its own.

mod common;

use std::io::ErrorKind;

use common::{child_role, run_child, shm_exists, shm_name, spawn_child, wait_for_line};
use mapview::MappedFile;

/// The children's side: what a child does for each role.
#[test]
fn child_entry() {
    let Some((role, arg)) = child_role() else {
        return;
    };
    match role.as_str() {
        "write-file" => {
            let map = unsafe {
                MappedFile::options()
                    .access(mapview::Access::ReadWrite)
                    .open(&arg)
            }
            .unwrap();
            map.view_mut(4095..4102)
                .unwrap()
                .copy_from_slice(b"childw!");
        }
        "check-file" => {
            let map = unsafe { MappedFile::open(&arg) }.unwrap();
            assert_eq!(&map.view(9000..9006).unwrap()[..], b"parent");
        }
        "write-shared" => {
            let map = unsafe { MappedFile::open_shared(&arg) }.unwrap();
            map.view_mut(100..105).unwrap().copy_from_slice(b"child");
        }
        "check-shared" => {
            let map = unsafe { MappedFile::open_shared(&arg) }.unwrap();
            assert_eq!(&map.view(200..206).unwrap()[..], b"parent");
        }
        "hold-shared" => {
            let _map = unsafe { MappedFile::open_shared(&arg) }.unwrap();
            println!("holding");
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn file_views_see_writes_from_another_process_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.bin");
    let map = unsafe { MappedFile::create(&path, 3 * 4096) }.unwrap();
    let watched = map.view(4090..4110).unwrap();
    run_child("child_entry", "write-file", path.to_str().unwrap());
    assert_eq!(&watched[5..12], b"childw!");

    map.view_mut(9000..9006).unwrap().copy_from_slice(b"parent");
    run_child("child_entry", "check-file", path.to_str().unwrap());
}

#[test]
fn shared_memory_sees_writes_from_another_process_both_ways() {
    let name = shm_name("coherent");
    let map = unsafe { MappedFile::create_shared(&name, 4096) }.unwrap();
    run_child("child_entry", "write-shared", &name);
    assert_eq!(&map.view(100..105).unwrap()[..], b"child");

    map.view_mut(200..206).unwrap().copy_from_slice(b"parent");
    run_child("child_entry", "check-shared", &name);
    drop(map);
    assert!(!shm_exists(&name));
}

#[test]
fn named_map_is_removed_after_a_holder_is_killed_and_the_last_one_drops() {
    let name = shm_name("killed");
    let map = unsafe { MappedFile::create_shared(&name, 4096) }.unwrap();
    let mut child = spawn_child("child_entry", "hold-shared", &name);
    wait_for_line(&mut child, "holding");
    child.kill().unwrap(); // SIGKILL: the child drops nothing
    child.wait().unwrap();
    assert!(shm_exists(&name));
    drop(map);
    assert!(!shm_exists(&name));
    let err = unsafe { MappedFile::open_shared(&name) }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn named_map_outlives_its_creator_while_another_process_holds_it() {
    let name = shm_name("survivor");
    let map = unsafe { MappedFile::create_shared(&name, 4096) }.unwrap();
    let mut child = spawn_child("child_entry", "hold-shared", &name);
    wait_for_line(&mut child, "holding");
    drop(map);
    assert!(shm_exists(&name), "the child still holds it");
    child.kill().unwrap();
    child.wait().unwrap();
    // Every holder is dead now: the next opener reaps the leftover.
    let err = unsafe { MappedFile::open_shared(&name) }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(!shm_exists(&name));
}
