//! Dovecot's `dovecot-uidlist` beside a Maildir, read so that a mailbox
//! moved from Dovecot keeps its ids: POP3 clients that leave mail on the
//! server would otherwise fetch everything again. Version 3 (Dovecot 1.1
//! on: `3 V<uidvalidity> N<next> ...`, then `UID [Xvalue...] :filename`)
//! and version 1 (`1 <uidvalidity> <next>`, then `UID filename`).

use std::collections::HashMap;
use std::io;

use crate::Maildir;

pub const UIDLIST: &str = "dovecot-uidlist";

/// The POP3 UIDL of each message Dovecot listed, by file name up to `:`:
/// the `P` field if Dovecot kept one (a migrated UIDL), else Dovecot's
/// default `pop3_uidl_format`, `%08Xu%08Xv` (UID and UIDVALIDITY in
/// upper-case hex). Empty without the file; lines that do not read are
/// skipped.
pub fn pop3_uidls(maildir: &Maildir) -> io::Result<HashMap<String, String>> {
    let text = match std::fs::read(maildir.path().join(UIDLIST)) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    Ok(parse(&text))
}

fn parse(text: &str) -> HashMap<String, String> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return HashMap::new();
    };
    let mut words = header.split(' ');
    let version = words.next().unwrap_or_default();
    let validity: Option<u32> = match version {
        "3" => words
            .find_map(|w| w.strip_prefix('V'))
            .and_then(|v| v.parse().ok()),
        "1" => words.next().and_then(|v| v.parse().ok()),
        _ => None,
    };
    let Some(validity) = validity else {
        return HashMap::new();
    };
    let mut uidls = HashMap::new();
    for line in lines {
        let (fields, name) = match version {
            "3" => match line.split_once(" :") {
                Some((fields, name)) => (fields, name),
                None => continue,
            },
            _ => match line.split_once(' ') {
                Some((uid, name)) => (uid, name),
                None => continue,
            },
        };
        let mut fields = fields.split(' ');
        let Some(uid) = fields.next().and_then(|u| u.parse::<u32>().ok()) else {
            continue;
        };
        let kept = fields
            .find_map(|f| f.strip_prefix('P'))
            .filter(|p| !p.is_empty());
        let uidl = kept.map_or_else(|| format!("{uid:08X}{validity:08X}"), str::to_string);
        let key = name.split_once(':').map_or(name, |(base, _)| base);
        uidls.insert(key.to_string(), uidl);
    }
    uidls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_three_and_one() {
        let v3 = "3 V1700000000 N4 G0123456789abcdef0123456789abcdef\n\
                  1 :1700000001.M1P1.mail,S=100,W=103:2,S\n\
                  2 W512 :1700000002.M2P2.mail,S=500\n\
                  3 P0000000abc W10 :1700000003.M3P3.mail\n\
                  junk line\n";
        let uidls = parse(v3);
        assert_eq!(
            uidls["1700000001.M1P1.mail,S=100,W=103"],
            "000000016553F100"
        );
        assert_eq!(uidls["1700000002.M2P2.mail,S=500"], "000000026553F100");
        assert_eq!(uidls["1700000003.M3P3.mail"], "0000000abc");
        assert_eq!(uidls.len(), 3);
        let v1 = parse("1 1700000000 3\n1 1700000001.M1P1.mail:2,\n2 1700000002.x\n");
        assert_eq!(v1["1700000001.M1P1.mail"], "000000016553F100");
        assert_eq!(v1.len(), 2);
        assert!(parse("").is_empty());
        assert!(parse("9 what\n1 :x\n").is_empty());
    }
}
