//! Checks of postern.toml's values that need more than their type: each a
//! serde `deserialize_with`, so a bad value fails the load with its own
//! line (toml gives a field's error the field's span), in every program
//! that loads the file and in `postern-admin check` alike. The words each
//! accepts are the ones the programs use (postern-listen's port kinds,
//! postern-sasl's mechanisms), so the two can never disagree.

use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{Deserializer, Error};

use crate::Network;

fn each<'de, D: Deserializer<'de>>(
    deserializer: D,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, D::Error> {
    let list = Vec::<String>::deserialize(deserializer)?;
    for item in &list {
        check(item).map_err(D::Error::custom)?;
    }
    Ok(list)
}

fn one_of<'de, D: Deserializer<'de>>(deserializer: D, words: &[&str]) -> Result<String, D::Error> {
    let word = String::deserialize(deserializer)?;
    if words.contains(&word.as_str()) {
        return Ok(word);
    }
    let (last, rest) = words.split_last().expect("a list of words");
    Err(D::Error::custom(format!(
        "{word:?} is not one of {}{}{last}",
        rest.join(", "),
        if rest.is_empty() { "" } else { " or " }
    )))
}

/// `[smtpd] listen`: `ADDRESS:PORT [mx|submission|smtps]`.
pub fn smtpd_listen<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    each(d, |spec| {
        postern_listen::parse::<postern_listen::SmtpPort>(spec).map(|_| ())
    })
}

/// `[pop3d] listen`: `ADDRESS:PORT [pop3|pop3s]`.
pub fn pop3d_listen<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    each(d, |spec| {
        postern_listen::parse::<postern_listen::Pop3Port>(spec).map(|_| ())
    })
}

/// A list of networks in CIDR notation.
pub fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    each(d, |network| network.parse::<Network>().map(|_| ()))
}

/// `[smtpd] auth_mechanisms`.
pub fn mechanisms<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    each(d, |name| match postern_sasl::Mechanism::parse(name) {
        Some(_) => Ok(()),
        None => Err(format!(
            "mechanism {name:?} is not one of PLAIN, LOGIN or CRAM-MD5"
        )),
    })
}

/// `[pop3d] access`.
pub fn access<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    one_of(d, &["any", "allow", "allow+lan"])
}

/// `[pop3d] proxy_tls`.
pub fn proxy_tls<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    one_of(d, &["required", "none"])
}

/// A directory everything else is found under: only an absolute path
/// means the same to every program, whatever its working directory.
pub fn absolute<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    let path = PathBuf::deserialize(d)?;
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(D::Error::custom(format!(
            "{} is not an absolute path",
            path.display()
        )))
    }
}

/// Text that goes into a protocol line: no line ends or other controls.
pub fn one_line<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    if text.chars().any(char::is_control) {
        return Err(D::Error::custom(
            "must be one line without control characters",
        ));
    }
    Ok(text)
}

/// `[pop3d] max_connections`: 1 to 999 (the listener's table of sessions).
pub fn connections<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if (1..=999).contains(&n) {
        Ok(n)
    } else {
        Err(D::Error::custom(format!("{n} is not from 1 to 999")))
    }
}
