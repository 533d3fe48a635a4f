use std::ffi::OsStr;

use super::*;

fn name(text: &str) -> &OsStr {
    OsStr::new(text)
}

/// A file created and written but neither fsynced nor named durably is gone after a power loss.
#[test]
fn nothing_unsynced_survives() {
    let mut model = Model::new();
    let file = model.create(ROOT_INO, name("a"), false, 0o644).unwrap();
    model.write(file, 0, b"hello").unwrap();
    let report = model.power_loss(None);
    assert_eq!(report.inodes_dropped, 1);
    assert_eq!(model.lookup(ROOT_INO, name("a")), Err(libc::ENOENT));
}

/// The file's fsync makes its bytes durable, but only the directory's fsync makes its name durable.
#[test]
fn a_name_needs_the_directory_fsync() {
    let mut model = Model::new();
    let file = model.create(ROOT_INO, name("a"), false, 0o644).unwrap();
    model.write(file, 0, b"hello").unwrap();
    model.fsync(file).unwrap();
    model.power_loss(None);
    assert_eq!(model.lookup(ROOT_INO, name("a")), Err(libc::ENOENT));

    let file = model.create(ROOT_INO, name("b"), false, 0o644).unwrap();
    model.write(file, 0, b"hello").unwrap();
    model.fsync(file).unwrap();
    model.fsync(ROOT_INO).unwrap();
    model.write(file, 5, b" world").unwrap();
    model.power_loss(None);
    let file = model.lookup(ROOT_INO, name("b")).unwrap();
    assert_eq!(model.read(file, 0, 100).unwrap(), b"hello");
}

/// A rename not followed by a directory fsync is undone; an unlink likewise.
#[test]
fn renames_and_unlinks_are_undone_without_the_directory_fsync() {
    let mut model = Model::new();
    let file = model.create(ROOT_INO, name("tmp"), false, 0o644).unwrap();
    model.write(file, 0, b"new").unwrap();
    model.fsync(file).unwrap();
    model.fsync(ROOT_INO).unwrap();
    model
        .rename(ROOT_INO, name("tmp"), ROOT_INO, name("final"), false)
        .unwrap();
    model.power_loss(None);
    assert!(model.lookup(ROOT_INO, name("final")).is_err());
    assert_eq!(model.lookup(ROOT_INO, name("tmp")), Ok(file));

    model.unlink(ROOT_INO, name("tmp"), false).unwrap();
    model.power_loss(None);
    assert_eq!(model.read(file, 0, 3).unwrap(), b"new");
}

/// After an fsync fails with EIO, a later fsync that succeeds does not make the lost writes
/// durable, though reads still see them until the power goes.
#[test]
fn a_failed_fsync_loses_its_writes_for_good() {
    let mut model = Model::new();
    let file = model.create(ROOT_INO, name("a"), false, 0o644).unwrap();
    model.fsync(ROOT_INO).unwrap();
    model.write(file, 0, b"lost").unwrap();
    model.faults.fsync_eio = true;
    assert_eq!(model.fsync(file), Err(libc::EIO));
    model.faults.fsync_eio = false;
    model.fsync(file).unwrap();
    assert_eq!(model.stats.fsyncs_after_error, 1, "the retry is counted");
    assert_eq!(model.read(file, 0, 4).unwrap(), b"lost");
    model.power_loss(None);
    assert_eq!(model.read(file, 0, 4).unwrap(), b"");
}

/// A torn power loss keeps an in-order prefix of the queued writes, ending on a sector boundary
/// or a whole write, and the same seed tears the same way.
#[test]
fn torn_power_loss_keeps_a_prefix_replayable_by_seed() {
    let run = |seed: u64| {
        let mut model = Model::new();
        let file = model.create(ROOT_INO, name("a"), false, 0o644).unwrap();
        model.fsync(ROOT_INO).unwrap();
        for chunk in 0..8u8 {
            model
                .write(file, u64::from(chunk) * 700, &[chunk + 1; 700])
                .unwrap();
        }
        model.power_loss(Some(&mut SplitMix64::new(seed)));
        model.read(file, 0, 8 * 700).unwrap()
    };
    for seed in 0..64 {
        let kept = run(seed);
        assert_eq!(kept, run(seed), "seed {seed} replays");
        for (position, byte) in kept.iter().enumerate() {
            assert_eq!(
                *byte as usize,
                position / 700 + 1,
                "seed {seed}: a prefix, in order"
            );
        }
        let len = kept.len();
        assert!(
            len % 700 == 0 || len % 512 == 0,
            "seed {seed}: kept {len} bytes"
        );
    }
}

/// Growing by fallocate costs no memory and reads as zeros; injected ENOSPC refuses writes.
#[test]
fn fallocate_and_enospc() {
    let mut model = Model::new();
    let file = model.create(ROOT_INO, name("a"), false, 0o644).unwrap();
    model.fallocate(file, 0, 1 << 30, 0).unwrap();
    assert_eq!(model.read(file, (1 << 30) - 2, 10).unwrap(), vec![0, 0]);
    model
        .fallocate(file, 0, 1 << 31, libc::FALLOC_FL_KEEP_SIZE)
        .unwrap();
    model.faults.write_enospc = true;
    assert_eq!(model.write(file, 0, b"x"), Err(libc::ENOSPC));
}
