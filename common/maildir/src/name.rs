//! Maildir file names: unique ones for fresh deliveries, the `,S=` and
//! `,W=` sizes, and the `:2,` flags.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Escapes a host name for a Maildir file name as Courier and Dovecot do:
/// `/` would split the path and `:` starts the info part.
pub fn escape_host(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for c in host.chars() {
        match c {
            '/' => out.push_str("\\057"),
            ':' => out.push_str("\\072"),
            c => out.push(c),
        }
    }
    out
}

/// Makes `<secs>.M<usec>P<pid>Q<n>.<host>` names, unique on this host: the
/// counter tells apart deliveries of one process within a microsecond.
pub struct UniqueNames {
    host: String,
    counter: AtomicU64,
}

impl UniqueNames {
    pub fn new(host: &str) -> UniqueNames {
        UniqueNames {
            host: escape_host(host),
            counter: AtomicU64::new(0),
        }
    }

    pub fn next(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        format!(
            "{}.M{}P{}Q{}.{}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            n,
            self.host
        )
    }

    pub fn host(&self) -> &str {
        &self.host
    }
}

/// A message file name: `base[,S=size][,W=vsize][:2,flags]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageName {
    pub base: String,
    pub size: Option<u64>,
    pub virtual_size: Option<u64>,
    /// The flag letters after `:2,`, sorted, or `None` without an info part.
    pub flags: Option<String>,
}

impl MessageName {
    pub fn parse(file_name: &str) -> MessageName {
        let (unique, info) = match file_name.split_once(':') {
            Some((unique, info)) => (unique, Some(info)),
            None => (file_name, None),
        };
        let mut fields = unique.split(',');
        let base = fields.next().unwrap_or_default().to_string();
        let mut size = None;
        let mut virtual_size = None;
        for field in fields {
            if let Some(v) = field.strip_prefix("S=") {
                size = v.parse().ok();
            } else if let Some(v) = field.strip_prefix("W=") {
                virtual_size = v.parse().ok();
            }
        }
        let flags = info.and_then(|info| info.strip_prefix("2,")).map(|flags| {
            let mut letters: Vec<char> = flags.chars().collect();
            letters.sort_unstable();
            letters.dedup();
            letters.into_iter().collect()
        });
        MessageName {
            base,
            size,
            virtual_size,
            flags,
        }
    }

    /// The name of a new message: `base,S=size,W=vsize`.
    pub fn for_new(base: &str, size: u64, virtual_size: u64) -> String {
        let mut name = String::with_capacity(base.len() + 24);
        let _ = write!(name, "{base},S={size},W={virtual_size}");
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_escaping() {
        assert_eq!(escape_host("mx.example"), "mx.example");
        assert_eq!(escape_host("a/b:c"), "a\\057b\\072c");
    }

    #[test]
    fn unique_names_differ_and_have_the_dovecot_shape() {
        let names = UniqueNames::new("h:1");
        let a = names.next();
        let b = names.next();
        assert_ne!(a, b);
        let (secs, rest) = a.split_once('.').unwrap();
        assert!(secs.parse::<u64>().is_ok());
        assert!(
            rest.starts_with('M') && rest.contains('P') && rest.contains("Q1."),
            "{a}"
        );
        assert!(a.ends_with(".h\\0721"), "{a}");
    }

    #[test]
    fn parse_names() {
        let n = MessageName::parse("1700000000.M1P2Q3.host,S=1234,W=1260:2,SF");
        assert_eq!(n.base, "1700000000.M1P2Q3.host");
        assert_eq!(n.size, Some(1234));
        assert_eq!(n.virtual_size, Some(1260));
        assert_eq!(n.flags.as_deref(), Some("FS"));
        let n = MessageName::parse("1700000000.x.host");
        assert_eq!((n.size, n.flags), (None, None));
        assert_eq!(MessageName::for_new("b", 10, 12), "b,S=10,W=12");
    }
}
