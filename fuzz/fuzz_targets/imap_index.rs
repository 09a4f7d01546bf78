#![no_main]
//! A folder's index and cache as a crash, a full disk or another program
//! may leave them: whatever bytes `postern-index` and `postern-cache`
//! hold, the folder opens and describes its messages, never a panic, and
//! shows what a rebuild from the Maildir shows (the same UIDs, flags,
//! sizes and described fields).
//! The first two bytes say where the index ends and the cache starts.
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use postern_mailstore::folder::Folder;

fn later() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Each message's record (its cache offset apart) and every described
/// field.
type View = Vec<(u32, u32, u32, u32, i64, Vec<Vec<u8>>)>;

fn view(folder: &Folder) -> View {
    (0..folder.len())
        .map(|i| {
            let r = folder.snapshot().record(i);
            let fields = (0..=postern_imap::describe::SENT)
                .map(|n| folder.field(i, n).expect("a field").into_owned())
                .collect();
            (r.uid, r.flags, r.keywords, r.size, r.internal_date, fields)
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((split, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let split = usize::from(u16::from_le_bytes(*split)).min(rest.len());
    let (index, cache) = rest.split_at(split);
    let dir = tempfile::tempdir().expect("a temporary directory");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir(dir.path().join(sub)).expect("a folder");
    }
    std::fs::write(dir.path().join("cur/1700000001.M1P1.fuzz:2,S"), "Subject: a\n\nx\n")
        .expect("a message");
    std::fs::write(dir.path().join("new/1700000002.M2P1.fuzz"), "Subject: b\n\ny\n")
        .expect("a message");
    let describe = postern_imap::describe::DESCRIBE;
    let (mut fresh, _) = Folder::open(dir.path(), describe, false, later()).expect("a rebuild");
    fresh.describe(&[0, 1]).expect("described");
    let expected = view(&fresh);
    drop(fresh);
    std::fs::write(dir.path().join("postern-index"), index).expect("an index");
    std::fs::write(dir.path().join("postern-cache"), cache).expect("a cache");
    let (mut folder, _) = Folder::open(dir.path(), describe, false, later()).expect("opens");
    folder.describe(&[0, 1]).expect("described");
    assert_eq!(view(&folder), expected);
});
