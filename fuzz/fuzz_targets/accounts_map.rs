#![no_main]
//! The accounts map (Dovecot passwd-file): any text loads, every mailbox
//! it yields has an address safe to use as a directory name.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut errors = Vec::new();
    let accounts = postern_config::Accounts::parse(Path::new("accounts"), &text, &mut errors);
    for account in accounts.iter() {
        assert!(account.address.is_path_safe());
        if let Some(mail) = &account.mail {
            assert!(mail.is_absolute());
        }
    }
});
