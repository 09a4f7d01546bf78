#![no_main]
//! A folder's UID list as another program (or a crash) may leave it: any
//! bytes read or are refused, never a panic; what is read writes back to
//! a list that reads the same; and no listed UID is at or past the next.
use libfuzzer_sys::fuzz_target;
use postern_mailstore::uidlist::UidList;

fuzz_target!(|data: &[u8]| {
    let Ok(list) = UidList::parse(&String::from_utf8_lossy(data)) else {
        return;
    };
    assert!(list.records.iter().all(|r| r.uid < list.next || list.next == u32::MAX));
    let again = UidList::parse(&list.to_text()).expect("what was written reads");
    assert_eq!(again.validity, list.validity);
    assert_eq!(again.next, list.next);
    assert_eq!(again.records.len(), list.records.len());
});
