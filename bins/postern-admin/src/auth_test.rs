//! `auth test`: whether a password opens a mailbox, as a login would.

use std::path::Path;

use postern_config::{Address, Config};

/// `auth test ADDR`: does this password open this mailbox?
pub fn run(dir: &Path, address: &str, password_file: Option<&Path>) -> i32 {
    let config = match Config::load(dir) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("postern-admin: {e}");
            return crate::EXIT_CONFIG;
        }
    };
    let Ok(address) = Address::parse(address) else {
        eprintln!("postern-admin: {address:?} is not an address");
        return 2;
    };
    let Some(account) = config.maps.accounts.get(&address) else {
        eprintln!("postern-admin: no mailbox {address}");
        return 1;
    };
    let password = match crate::password::read(password_file) {
        Ok(password) => password,
        Err(e) => {
            eprintln!("postern-admin: {e:#}");
            return 2;
        }
    };
    if account.password.verify(password.as_bytes()) {
        println!(
            "{address}: password matches ({})",
            account.password.scheme_name()
        );
        0
    } else {
        println!(
            "{address}: password does not match ({})",
            account.password.scheme_name()
        );
        1
    }
}
