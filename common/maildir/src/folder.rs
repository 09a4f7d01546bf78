//! Maildir++ folder names: `.Name.Sub/` beside INBOX, read from and
//! written to their directory names and the levels a client shows, every
//! one safe to join to a Maildir path.

use crate::mutf7;

/// A Maildir++ folder, held as its on-disk components (each in modified
/// UTF-7, the hierarchy joined by `.`): `.Lists.rust` is `Lists` › `rust`.
/// Every value is safe to join to a Maildir path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FolderName {
    components: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FolderError {
    #[error("folder directory names start with '.'")]
    NoLeadingDot,
    #[error("empty folder name or component")]
    Empty,
    #[error("'/' is not allowed in folder names")]
    Slash,
    #[error("control characters are not allowed in folder names")]
    Control,
    #[error("'.' is the hierarchy separator and cannot be part of a name")]
    Dot,
    #[error("not valid modified UTF-7")]
    Encoding,
    #[error("INBOX is the Maildir itself, not a folder")]
    Inbox,
    #[error("folder name too long")]
    TooLong,
}

/// File systems limit a name to 255 bytes.
const MAX_DIR_NAME: usize = 255;

impl FolderName {
    /// Validates a directory name such as `.Sent` or `.Lists.rust`.
    pub fn from_dir_name(dir: &str) -> Result<FolderName, FolderError> {
        let rest = dir.strip_prefix('.').ok_or(FolderError::NoLeadingDot)?;
        let components: Vec<String> = rest.split('.').map(str::to_string).collect();
        for component in &components {
            check_component(component)?;
            let decoded = mutf7::decode(component).ok_or(FolderError::Encoding)?;
            // Encoded controls would show as one thing and be another.
            if decoded.chars().any(char::is_control) {
                return Err(FolderError::Control);
            }
        }
        FolderName::checked(components)
    }

    /// Builds a folder from the names a user sees, one per hierarchy level.
    pub fn from_display<S: AsRef<str>>(levels: &[S]) -> Result<FolderName, FolderError> {
        let mut components = Vec::with_capacity(levels.len());
        for level in levels {
            let level = level.as_ref();
            if level.chars().any(char::is_control) {
                return Err(FolderError::Control);
            }
            let encoded = mutf7::encode(level);
            check_component(&encoded)?;
            components.push(encoded);
        }
        FolderName::checked(components)
    }

    fn checked(components: Vec<String>) -> Result<FolderName, FolderError> {
        if components.is_empty() {
            return Err(FolderError::Empty);
        }
        if components[0].eq_ignore_ascii_case("INBOX") {
            return Err(FolderError::Inbox);
        }
        let folder = FolderName { components };
        if folder.dir_name().len() > MAX_DIR_NAME {
            return Err(FolderError::TooLong);
        }
        Ok(folder)
    }

    /// `.A.B`
    pub fn dir_name(&self) -> String {
        let mut name = String::new();
        for component in &self.components {
            name.push('.');
            name.push_str(component);
        }
        name
    }

    /// The levels as the user sees them, decoded.
    pub fn display_levels(&self) -> Vec<String> {
        self.components
            .iter()
            .map(|c| mutf7::decode(c).expect("components are validated on construction"))
            .collect()
    }
}

fn check_component(component: &str) -> Result<(), FolderError> {
    if component.is_empty() {
        return Err(FolderError::Empty);
    }
    if component.contains('/') {
        return Err(FolderError::Slash);
    }
    if component.contains('.') {
        return Err(FolderError::Dot);
    }
    if component.chars().any(char::is_control) {
        return Err(FolderError::Control);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        let f = FolderName::from_dir_name(".Lists.rust").unwrap();
        assert_eq!(f.display_levels(), ["Lists", "rust"]);
        assert_eq!(f.dir_name(), ".Lists.rust");
        let g = FolderName::from_display(&["Entwürfe"]).unwrap();
        assert_eq!(g.dir_name(), ".Entw&APw-rfe");
        assert_eq!(FolderName::from_dir_name(".Entw&APw-rfe").unwrap(), g);
    }

    #[test]
    fn hostile_names() {
        use FolderError::*;
        let cases = [
            ("Sent", NoLeadingDot),
            (".", Empty),
            ("..", Empty),
            ("..Sent", Empty),
            (".Sent.", Empty),
            (".a/../../etc", Slash),
            (".a\u{7}b", Control),
            (".&AGE-", Encoding),
            (".caf\u{e9}", Encoding),
            (".INBOX", Inbox),
            (".inbox.x", Inbox),
        ];
        for (dir, error) in cases {
            assert_eq!(FolderName::from_dir_name(dir), Err(error), "{dir:?}");
        }
        assert_eq!(
            FolderName::from_dir_name(&format!(".{}", "a".repeat(300))),
            Err(TooLong)
        );
        assert_eq!(FolderName::from_display(&["a.b"]), Err(Dot));
        assert_eq!(FolderName::from_display(&["a/b"]), Err(Slash));
        assert_eq!(FolderName::from_display(&["a\nb"]), Err(Control));
        assert_eq!(FolderName::from_display::<&str>(&[]), Err(Empty));
    }
}
