//! Maildir++ quota: `maildirsize` holds the limits on its first line
//! (`<bytes>S,<count>C`) and then `bytes count` lines that add up to the
//! usage. Delivery appends a line; anything that removes mail appends a
//! negative one; the file is recomputed from the file names when it is
//! missing, over 5,120 bytes, holds other limits than the account's, or says
//! the mailbox is full but is older than 15 minutes (Courier's rules).
//! Every folder counts, Trash included, as in Dovecot.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use crate::{Maildir, UniqueNames};

const FILE: &str = "maildirsize";
const MAX_FILE_SIZE: u64 = 5120;
const STALE_WHEN_FULL: Duration = Duration::from_secs(15 * 60);

/// A mailbox's limits; 0 means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaLimits {
    pub bytes: u64,
    pub messages: u64,
}

/// What `maildirsize` adds up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaUsage {
    pub bytes: i64,
    pub messages: i64,
}

impl QuotaLimits {
    pub fn is_unlimited(&self) -> bool {
        self.bytes == 0 && self.messages == 0
    }

    fn definition(&self) -> String {
        let mut parts = Vec::new();
        if self.bytes > 0 {
            parts.push(format!("{}S", self.bytes));
        }
        if self.messages > 0 {
            parts.push(format!("{}C", self.messages));
        }
        if parts.is_empty() {
            return "0S".to_string();
        }
        parts.join(",")
    }

    fn parse_definition(line: &str) -> Option<QuotaLimits> {
        let mut limits = QuotaLimits::default();
        for part in line.trim().split(',') {
            if let Some(n) = part.strip_suffix('S') {
                limits.bytes = n.parse().ok()?;
            } else if let Some(n) = part.strip_suffix('C') {
                limits.messages = n.parse().ok()?;
            } else {
                return None;
            }
        }
        Some(limits)
    }
}

impl QuotaUsage {
    /// Whether adding a message of `bytes` stays within `limits`.
    pub fn admits(&self, limits: QuotaLimits, bytes: u64) -> bool {
        let bytes_ok =
            limits.bytes == 0 || self.bytes.saturating_add(bytes as i64) <= limits.bytes as i64;
        let count_ok =
            limits.messages == 0 || self.messages.saturating_add(1) <= limits.messages as i64;
        bytes_ok && count_ok
    }
}

impl Maildir {
    /// The current usage, recomputing `maildirsize` when the rules above
    /// say so.
    pub fn quota_usage(&self, limits: QuotaLimits, names: &UniqueNames) -> io::Result<QuotaUsage> {
        let path = self.path().join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if let Some(text) = text.filter(|t| (t.len() as u64) <= MAX_FILE_SIZE) {
            let mut lines = text.lines();
            let same_limits = lines.next().and_then(QuotaLimits::parse_definition) == Some(limits);
            if let (true, Some(usage)) = (same_limits, sum_lines(lines)) {
                let recent = std::fs::metadata(&path)?
                    .modified()?
                    .elapsed()
                    .map(|age| age < STALE_WHEN_FULL)
                    .unwrap_or(true);
                if usage.admits(limits, 0) || recent {
                    return Ok(usage);
                }
            }
        }
        self.recalculate_quota(limits, names)
    }

    /// Counts every message of the Maildir and its folders and writes a new
    /// `maildirsize` through `tmp/` and a rename, so readers never see half
    /// a file.
    pub fn recalculate_quota(
        &self,
        limits: QuotaLimits,
        names: &UniqueNames,
    ) -> io::Result<QuotaUsage> {
        let mut usage = QuotaUsage::default();
        let mut maildirs = vec![self.clone()];
        maildirs.extend(self.folders()?.iter().map(|f| self.folder(f)));
        for maildir in maildirs {
            let entries = match maildir.messages() {
                Ok(entries) => entries,
                // A folder removed while we count holds nothing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                match entry.size() {
                    Ok(size) => {
                        usage.bytes += size as i64;
                        usage.messages += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let tmp = self.path().join("tmp").join(names.next());
        let content = format!(
            "{}\n{} {}\n",
            limits.definition(),
            usage.bytes,
            usage.messages
        );
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| file.write_all(content.as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, self.path().join(FILE)));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(usage)
    }
}

/// Appends `bytes count` to `maildirsize` in one write (O_APPEND keeps
/// concurrent writers' lines whole). Without the file there is nothing to
/// keep current: the next quota check recomputes it.
pub fn maildirsize_add(maildir: &Maildir, bytes: i64, count: i64) -> io::Result<()> {
    let path = maildir.path().join(FILE);
    match std::fs::OpenOptions::new().append(true).open(&path) {
        Ok(mut file) => file.write_all(format!("{bytes} {count}\n").as_bytes()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn sum_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Option<QuotaUsage> {
    let mut usage = QuotaUsage::default();
    for line in lines {
        let mut fields = line.split_whitespace();
        let (Some(bytes), Some(count)) = (fields.next(), fields.next()) else {
            return None;
        };
        usage.bytes = usage.bytes.checked_add(bytes.parse().ok()?)?;
        usage.messages = usage.messages.checked_add(count.parse().ok()?)?;
    }
    Some(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions() {
        let l = QuotaLimits {
            bytes: 1000,
            messages: 10,
        };
        assert_eq!(l.definition(), "1000S,10C");
        assert_eq!(QuotaLimits::parse_definition("1000S,10C"), Some(l));
        assert_eq!(
            QuotaLimits::parse_definition("500S"),
            Some(QuotaLimits {
                bytes: 500,
                messages: 0
            })
        );
        assert_eq!(QuotaLimits::parse_definition("junk"), None);
    }

    #[test]
    fn admits() {
        let l = QuotaLimits {
            bytes: 100,
            messages: 2,
        };
        assert!(
            QuotaUsage {
                bytes: 50,
                messages: 1
            }
            .admits(l, 50)
        );
        assert!(
            !QuotaUsage {
                bytes: 50,
                messages: 1
            }
            .admits(l, 51)
        );
        assert!(
            !QuotaUsage {
                bytes: 0,
                messages: 2
            }
            .admits(l, 1)
        );
        assert!(
            QuotaUsage {
                bytes: 1 << 40,
                messages: 1 << 40
            }
            .admits(QuotaLimits::default(), 1)
        );
    }

    #[test]
    fn recomputes_when_missing_stale_or_too_big_and_sums_lines() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path().join("Maildir")).unwrap();
        let names = UniqueNames::new("h");
        std::fs::write(md.path().join("new/1.a.h,S=100,W=104"), vec![b'x'; 100]).unwrap();
        let folder = md
            .create_folder(&crate::FolderName::from_dir_name(".Sent").unwrap())
            .unwrap();
        std::fs::write(folder.path().join("cur/2.b.h:2,S"), vec![b'y'; 30]).unwrap();
        let limits = QuotaLimits {
            bytes: 1000,
            messages: 0,
        };
        let usage = md.quota_usage(limits, &names).unwrap();
        assert_eq!(
            usage,
            QuotaUsage {
                bytes: 130,
                messages: 2
            }
        );
        let file = md.path().join(FILE);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "1000S\n130 2\n");

        maildirsize_add(&md, 70, 1).unwrap();
        maildirsize_add(&md, -30, -1).unwrap();
        assert_eq!(
            md.quota_usage(limits, &names).unwrap(),
            QuotaUsage {
                bytes: 170,
                messages: 2
            }
        );

        // New limits rewrite the first line (and recount).
        let bigger = QuotaLimits {
            bytes: 5000,
            messages: 9,
        };
        assert_eq!(
            md.quota_usage(bigger, &names).unwrap(),
            QuotaUsage {
                bytes: 130,
                messages: 2
            }
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "5000S,9C\n130 2\n");

        // Over 5,120 bytes: recounted, shrinking the file.
        for _ in 0..2000 {
            maildirsize_add(&md, 1, 0).unwrap();
        }
        assert!(std::fs::metadata(&file).unwrap().len() > MAX_FILE_SIZE);
        assert_eq!(
            md.quota_usage(bigger, &names).unwrap(),
            QuotaUsage {
                bytes: 130,
                messages: 2
            }
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "5000S,9C\n130 2\n");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(md.path().join("tmp")).unwrap().count(), 0);
    }
}
