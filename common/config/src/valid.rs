//! postern.toml's values parsed into the types the programs use (listen
//! entries, networks, mechanisms, words of a set) or checked beyond their
//! type, as serde `with` and `deserialize_with` functions: a bad value
//! fails the load at its own line (toml gives a field's error the field's
//! span), in every program that loads the file and in `postern-admin
//! check` alike, and no program parses a string of it again. The words
//! each accepts are the ones the programs use (postern-listen's port
//! kinds, postern-sasl's mechanisms).

use std::path::PathBuf;

use serde::de::{Deserializer, Error};
use serde::{Deserialize, Serializer};

use crate::Network;

/// A list parsed item by item with `parse` and written back with `show`,
/// as postern.toml spells it.
fn parsed_list<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|item| parse(item).map_err(D::Error::custom))
        .collect()
}

fn shown_list<S: Serializer, T>(
    list: &[T],
    serializer: S,
    show: impl Fn(&T) -> String,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(list.iter().map(show))
}

/// `[smtpd] listen`: `ADDRESS:PORT [mx|submission|smtps]`.
pub mod smtpd_listen {
    use super::*;
    use postern_listen::{Listen, SmtpPort};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Listen<SmtpPort>>, D::Error> {
        parsed_list(d, postern_listen::parse)
    }

    pub fn serialize<S: Serializer>(list: &[Listen<SmtpPort>], s: S) -> Result<S::Ok, S::Error> {
        shown_list(list, s, ToString::to_string)
    }
}

/// `[pop3d] listen`: `ADDRESS:PORT [pop3|pop3s]`.
pub mod pop3d_listen {
    use super::*;
    use postern_listen::{Listen, Pop3Port};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Listen<Pop3Port>>, D::Error> {
        parsed_list(d, postern_listen::parse)
    }

    pub fn serialize<S: Serializer>(list: &[Listen<Pop3Port>], s: S) -> Result<S::Ok, S::Error> {
        shown_list(list, s, ToString::to_string)
    }
}

/// `[imapd] listen`: `ADDRESS:PORT [imap|imaps]`.
pub mod imapd_listen {
    use super::*;
    use postern_listen::{ImapPort, Listen};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Listen<ImapPort>>, D::Error> {
        parsed_list(d, postern_listen::parse)
    }

    pub fn serialize<S: Serializer>(list: &[Listen<ImapPort>], s: S) -> Result<S::Ok, S::Error> {
        shown_list(list, s, ToString::to_string)
    }
}

/// A list of networks in CIDR notation.
pub mod networks {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Network>, D::Error> {
        parsed_list(d, str::parse)
    }

    pub fn serialize<S: Serializer>(list: &[Network], s: S) -> Result<S::Ok, S::Error> {
        shown_list(list, s, ToString::to_string)
    }
}

/// `[smtpd] auth_mechanisms`.
pub mod mechanisms {
    use super::*;
    use postern_sasl::Mechanism;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Mechanism>, D::Error> {
        parsed_list(d, |name| {
            Mechanism::parse(name)
                .ok_or_else(|| format!("mechanism {name:?} is not one of PLAIN, LOGIN or CRAM-MD5"))
        })
    }

    pub fn serialize<S: Serializer>(list: &[Mechanism], s: S) -> Result<S::Ok, S::Error> {
        shown_list(list, s, |m| m.name().to_string())
    }
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

/// `[pop3d] proxy_separator`: 1 to 4 printable characters, not `@`, which
/// would send every `user@domain` login to the proxy.
pub fn separator<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    if (1..=4).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic() && b != b'@') {
        Ok(text)
    } else {
        Err(D::Error::custom(
            "must be 1 to 4 printable characters other than @",
        ))
    }
}
