//! The domains map: which domains are local (system users) and which
//! virtual (the accounts map).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::LineError;
use crate::address::valid_domain;
use crate::maps::{MapFile, logical_lines};

/// What a domain's mail is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainKind {
    /// `user@domain` is the system user `user`.
    Local,
    /// Addresses are virtual mailboxes (accounts) or aliases.
    Virtual,
}

/// The `domains` map: one `domain kind` pair a line, kind `local` or
/// `virtual`. The host's own name is always local.
#[derive(Debug, Default)]
pub struct Domains {
    kinds: HashMap<String, (DomainKind, usize)>,
    broken: HashSet<String>,
}

impl Domains {
    pub fn parse(path: &Path, text: &str, errors: &mut Vec<LineError>) -> Domains {
        let mut domains = Domains::default();
        let file = MapFile(path);
        for (line, content) in logical_lines(text) {
            let mut words = content.split_whitespace();
            let name = words
                .next()
                .expect("logical lines are not blank")
                .to_lowercase();
            let name = name.strip_suffix('.').unwrap_or(&name).to_string();
            if !valid_domain(&name) || name.starts_with('[') {
                errors.push(file.error(line, format!("{name:?} is not a domain name")));
                continue;
            }
            let kind = match words.next() {
                Some("virtual") => DomainKind::Virtual,
                Some("local") => DomainKind::Local,
                Some(other) => {
                    errors.push(file.error(
                        line,
                        format!("kind {other:?} for {name}: expected local or virtual"),
                    ));
                    domains.broken.insert(name);
                    continue;
                }
                None => {
                    errors.push(file.error(
                        line,
                        format!("no kind for {name}: expected local or virtual"),
                    ));
                    domains.broken.insert(name);
                    continue;
                }
            };
            if let Some(extra) = words.next() {
                errors.push(file.error(
                    line,
                    format!("unexpected {extra:?} after the kind of {name}"),
                ));
                domains.broken.insert(name);
                continue;
            }
            if let Some((_, first)) = domains.kinds.get(&name) {
                errors.push(file.error(
                    line,
                    format!("{name} is listed again (first at line {first})"),
                ));
                continue;
            }
            domains.kinds.insert(name, (kind, line));
        }
        domains
    }

    pub fn kind(&self, domain: &str) -> Option<DomainKind> {
        self.kinds.get(domain).map(|(kind, _)| *kind)
    }

    pub fn line(&self, domain: &str) -> Option<usize> {
        self.kinds.get(domain).map(|(_, line)| *line)
    }

    /// A domain whose line is bad: its mail is deferred, not bounced.
    pub fn is_broken(&self, domain: &str) -> bool {
        self.broken.contains(domain)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, DomainKind)> {
        self.kinds
            .iter()
            .map(|(name, (kind, _))| (name.as_str(), *kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kinds_and_reports_bad_lines() {
        let text = "# comment\nexample.test virtual\nShell.Example. local\nbad.test remote\n\nexample.test local\nx/y virtual\nlonely.test\n";
        let mut errors = Vec::new();
        let domains = Domains::parse(Path::new("domains"), text, &mut errors);
        assert_eq!(domains.kind("example.test"), Some(DomainKind::Virtual));
        assert_eq!(domains.kind("shell.example"), Some(DomainKind::Local));
        assert_eq!(domains.kind("bad.test"), None);
        assert!(domains.is_broken("bad.test"));
        assert!(domains.is_broken("lonely.test"));
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            [
                "domains:4: kind \"remote\" for bad.test: expected local or virtual",
                "domains:6: example.test is listed again (first at line 2)",
                "domains:7: \"x/y\" is not a domain name",
                "domains:8: no kind for lonely.test: expected local or virtual",
            ]
        );
    }
}
