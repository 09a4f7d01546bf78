#![no_main]
//! Folder names: a directory name is accepted only in its one canonical
//! form (it round-trips), and whatever a user types either becomes a safe
//! directory name or is refused.
use libfuzzer_sys::fuzz_target;
use postern_maildir::FolderName;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(folder) = FolderName::from_dir_name(&text) {
        assert_eq!(folder.dir_name(), text);
        let levels = folder.display_levels();
        assert_eq!(FolderName::from_display(&levels).as_ref(), Ok(&folder));
    }
    let levels: Vec<&str> = text.split('/').collect();
    if let Ok(folder) = FolderName::from_display(&levels) {
        let dir = folder.dir_name();
        assert!(!dir.contains('/') && !dir.contains("..") && dir.starts_with('.'));
        assert!(dir.bytes().all(|b| (0x20..0x7f).contains(&b)));
        assert_eq!(FolderName::from_dir_name(&dir).as_ref(), Ok(&folder));
        assert_eq!(folder.display_levels(), levels);
    }
});
