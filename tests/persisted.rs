//! Persisted maps: files on disk, their views, access modes and bad input.

use std::io::ErrorKind;

use mapview::{Access, MappedFile};

fn temp_file(contents: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.bin");
    std::fs::write(&path, contents).unwrap();
    (dir, path)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4099) as u8).collect()
}

#[test]
fn open_maps_the_whole_file_read_only() {
    let data = pattern(10_001);
    let (_dir, path) = temp_file(&data);
    let map = unsafe { MappedFile::open(&path) }.unwrap();
    assert_eq!(map.capacity(), 10_001);
    assert_eq!(map.access(), Access::Read);
    assert_eq!(&map.view(..).unwrap()[..], &data[..]);
}

#[test]
fn views_at_unaligned_offsets_show_exactly_their_bytes() {
    let data = pattern(3 * 4096 + 17);
    let (_dir, path) = temp_file(&data);
    let map = unsafe { MappedFile::open(&path) }.unwrap();
    for (start, end) in [
        (1, 2),
        (4095, 4097),
        (4096, 8192),
        (5000, 12_305),
        (12_304, 12_305),
    ] {
        let view = map.view(start..end).unwrap();
        assert_eq!(view.offset(), start);
        assert_eq!(
            &view[..],
            &data[start as usize..end as usize],
            "{start}..{end}"
        );
    }
    assert_eq!(&map.view(..=9).unwrap()[..], &data[..10]);
    assert_eq!(&map.view(12_300..).unwrap()[..], &data[12_300..]);
}

#[test]
fn create_makes_and_grows_the_file_but_never_shrinks_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.bin");
    let map = unsafe { MappedFile::create(&path, 9000) }.unwrap();
    assert_eq!(map.access(), Access::ReadWrite);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 9000);
    assert!(map.view(..).unwrap().iter().all(|&b| b == 0));
    drop(map);

    let map = unsafe { MappedFile::create(&path, 20_000) }.unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 20_000);
    assert_eq!(map.capacity(), 20_000);

    let map = unsafe { MappedFile::create(&path, 100) }.unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 20_000);
    assert_eq!(map.capacity(), 100);
}

#[test]
fn two_views_of_the_same_range_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let map = unsafe { MappedFile::create(dir.path().join("f"), 3 * 4096) }.unwrap();
    let mut a = map.view_mut(4000..9000).unwrap();
    let mut b = map.view_mut(4000..9000).unwrap();
    a[..5].copy_from_slice(b"hello");
    assert_eq!(&b[..5], b"hello");
    b[4995..].copy_from_slice(b"world");
    assert_eq!(&a[4995..], b"world");
    let overlapping = map.view(8990..9000).unwrap();
    assert_eq!(&overlapping[5..], b"world");
}

#[test]
fn flush_makes_writes_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let map = unsafe { MappedFile::create(&path, 10_000) }.unwrap();
    let mut view = map.view_mut(4097..4200).unwrap();
    view[..3].copy_from_slice(b"abc");
    view.flush_range(4097..4100).unwrap();
    view.write_at(100, b"xyz").unwrap();
    view.flush().unwrap();
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(&on_disk[4097..4100], b"abc");
    assert_eq!(&on_disk[4197..4200], b"xyz");
}

#[test]
fn flush_range_outside_the_view_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let map = unsafe { MappedFile::create(dir.path().join("f"), 10_000) }.unwrap();
    let view = map.view_mut(100..200).unwrap();
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = view.flush_range(150..149);
    for err in [
        view.flush_range(0..150),
        view.flush_range(150..201),
        reversed,
    ] {
        assert_eq!(err.unwrap_err().kind(), ErrorKind::InvalidInput);
    }
    view.flush_range(150..).unwrap();
    view.flush_range(150..150).unwrap();
}

#[test]
fn copy_on_write_changes_the_view_but_never_the_file() {
    let data = pattern(8192);
    let (_dir, path) = temp_file(&data);
    let map = unsafe {
        MappedFile::options()
            .access(Access::CopyOnWrite)
            .open(&path)
    }
    .unwrap();
    let mut view = map.view_mut(10..5000).unwrap();
    view[..4].copy_from_slice(b"priv");
    assert_eq!(&view[..4], b"priv");
    view.flush().unwrap();
    drop(view);
    drop(map);
    assert_eq!(std::fs::read(&path).unwrap(), data);
}

#[test]
fn typed_values_round_trip_at_unaligned_offsets() {
    let map = MappedFile::anonymous(64).unwrap();
    let mut view = map.view_mut(3..).unwrap();
    view.write_value(1, &0x0102_0304_0506_0708_u64).unwrap();
    view.write_value(9, &[1.5f32, -2.0]).unwrap();
    assert_eq!(view.read_value::<u64>(1).unwrap(), 0x0102_0304_0506_0708);
    let reader = map.view(..).unwrap();
    assert_eq!(reader.read_value::<[f32; 2]>(12).unwrap(), [1.5, -2.0]);
    assert_eq!(reader[4], 0x08); // little-endian on the platforms we run
}

#[test]
fn reads_and_writes_past_the_view_end_are_errors_and_change_nothing() {
    let map = MappedFile::anonymous(100).unwrap();
    let mut view = map.view_mut(90..).unwrap();
    let err = view.write_at(8, b"abc").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WriteZero);
    assert!(view.iter().all(|&b| b == 0));
    let err = view.write_value(u64::MAX, &1u8).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WriteZero);
    let mut buf = [0u8; 11];
    assert_eq!(
        view.read_at(0, &mut buf).unwrap_err().kind(),
        ErrorKind::UnexpectedEof
    );
    assert_eq!(
        view.read_value::<u32>(7).unwrap_err().kind(),
        ErrorKind::UnexpectedEof
    );
}

#[test]
fn protection_changes_between_read_only_and_read_write() {
    let dir = tempfile::tempdir().unwrap();
    let map = unsafe { MappedFile::create(dir.path().join("f"), 5000) }.unwrap();
    let view = map.view(100..200).unwrap();
    let mut writable = view.make_mut().unwrap();
    writable[0] = 7;
    let read_only = writable.make_read_only().unwrap();
    assert_eq!(read_only[0], 7);
    assert_eq!(map.view(100..101).unwrap()[0], 7);
}

#[test]
fn read_only_maps_refuse_every_kind_of_write() {
    let (_dir, path) = temp_file(&pattern(5000));
    let map = unsafe { MappedFile::open(&path) }.unwrap();
    assert_eq!(
        map.view_mut(..).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    let view = map.view(..).unwrap();
    assert_eq!(
        view.make_mut().unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

#[test]
fn bad_ranges_are_invalid_input() {
    let map = MappedFile::anonymous(4096).unwrap();
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = map.view(11..10).map(drop);
    for err in [
        reversed,
        map.view(0..4097).map(drop),
        map.view(4097..).map(drop),
        map.view(4097..4097).map(drop),
        map.view(..=4096).map(drop),
        map.view_mut(5000..6000).map(drop),
    ] {
        assert_eq!(err.unwrap_err().kind(), ErrorKind::InvalidInput);
    }
}

#[test]
fn bad_files_and_capacities_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = unsafe { MappedFile::open(&missing) }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    let err = unsafe { MappedFile::open(dir.path()) }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    let (_d, short) = temp_file(b"short");
    for access in [Access::Read, Access::CopyOnWrite] {
        let err = unsafe {
            MappedFile::options()
                .access(access)
                .capacity(100)
                .open(&short)
        };
        assert_eq!(err.unwrap_err().kind(), ErrorKind::InvalidInput);
    }
    let err = unsafe {
        MappedFile::options()
            .create(true)
            .open(dir.path().join("ro"))
    };
    assert_eq!(err.unwrap_err().kind(), ErrorKind::InvalidInput);
    assert!(!dir.path().join("ro").exists());
}
