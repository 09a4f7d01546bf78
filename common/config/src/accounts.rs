//! The accounts map: virtual mailboxes in Dovecot's passwd-file format,
//! with Postern's own extra fields.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use postern_password::StoredPassword;

use crate::maps::{MapFile, logical_lines};
use crate::size::{parse_size, parse_size_with_unit};
use crate::{Address, LineError, MailOwner};

/// A mailbox's quota from its accounts line; `None` fields fall back to the
/// configured default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    pub bytes: Option<u64>,
    pub messages: Option<u64>,
}

/// Whether an IMAP user may create, rename and delete folders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolderRights {
    Manage,
    Fixed,
}

/// Which folders a POP3 session sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pop3Scope {
    Inbox,
    AllFolders,
}

/// One virtual mailbox: a line of the accounts file in Dovecot's passwd-file
/// format, `user@domain:{SCHEME}secret:uid:gid:gecos:home:shell:extra`.
#[derive(Clone, Debug)]
pub struct Account {
    pub address: Address,
    pub password: StoredPassword,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub home: Option<PathBuf>,
    /// The Maildir from Dovecot's `userdb_mail=maildir:PATH`, expanded.
    pub mail: Option<PathBuf>,
    pub quota: Quota,
    pub max_message_size: Option<u64>,
    pub folder_rights: FolderRights,
    pub pop3_scope: Pop3Scope,
    /// RFC 1939 §13: a POP3 login by APOP only, never USER/PASS.
    pub pop3_apop_only: bool,
    /// POP3 leaves out invalid `Message-ID:` fields for this account.
    pub pop3_strip_message_id: bool,
    pub line: usize,
}

impl Account {
    /// Who owns the mailbox: the line's uid and gid where it has them, else
    /// `mail_owner`'s; the user name (for its supplementary groups) only
    /// when the owner is the mail owner itself. `None` when `mail_owner`
    /// names no user.
    pub fn owner(&self, mail_owner: &MailOwner) -> Option<(u32, u32, Option<String>)> {
        let (uid, gid, name) = mail_owner.resolve()?;
        let name = name.filter(|_| self.uid.is_none());
        Some((self.uid.unwrap_or(uid), self.gid.unwrap_or(gid), name))
    }
}

/// Postern's own extra fields, beside Dovecot's.
pub const FIELD_MAX_SIZE: &str = "postern_max_message_size";
pub const FIELD_FOLDERS: &str = "postern_imap_folders";
pub const FIELD_POP3: &str = "postern_pop3_folders";
pub const FIELD_POP3_LOGIN: &str = "postern_pop3_login";
pub const FIELD_POP3_MESSAGE_ID: &str = "postern_pop3_message_id";

#[derive(Debug, Default)]
pub struct Accounts {
    by_address: HashMap<Address, Account>,
    broken: HashSet<Address>,
}

impl Accounts {
    pub fn parse(path: &Path, text: &str, errors: &mut Vec<LineError>) -> Accounts {
        let mut accounts = Accounts::default();
        let file = MapFile(path);
        for (line, content) in logical_lines(text) {
            let user = content.split(':').next().unwrap_or_default();
            let address = match Address::parse(user) {
                Ok(address) if address.is_path_safe() => address,
                Ok(_) => {
                    errors.push(
                        file.error(line, format!("{user:?} cannot name a mailbox directory")),
                    );
                    continue;
                }
                Err(e) => {
                    errors.push(file.error(line, format!("user {user:?}: {e}")));
                    continue;
                }
            };
            match parse_account(&address, content, line) {
                Ok(account) => {
                    if let Some(first) = accounts.by_address.get(&address) {
                        errors.push(file.error(
                            line,
                            format!("{address} is listed again (first at line {})", first.line),
                        ));
                        continue;
                    }
                    if !account.password.is_supported() {
                        errors.push(file.error(
                            line,
                            format!("{address}: password scheme not supported; logins will fail"),
                        ));
                    }
                    accounts.by_address.insert(address, account);
                }
                Err(message) => {
                    errors.push(file.error(line, format!("{address}: {message}")));
                    accounts.broken.insert(address);
                }
            }
        }
        accounts
    }

    pub fn get(&self, address: &Address) -> Option<&Account> {
        self.by_address.get(address)
    }

    /// An address whose accounts line is bad: its mail is deferred.
    pub fn is_broken(&self, address: &Address) -> bool {
        self.broken.contains(address)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.by_address.values()
    }

    pub fn len(&self) -> usize {
        self.by_address.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_address.is_empty()
    }
}

fn parse_account(address: &Address, content: &str, line: usize) -> Result<Account, String> {
    // Dovecot splits the first seven fields on ':' and keeps the rest
    // whole, since extra fields such as `userdb_mail=maildir:~/Maildir`
    // hold colons themselves.
    let mut fields = content.splitn(8, ':');
    let _user = fields.next();
    let password = fields.next().unwrap_or_default();
    let uid = parse_id(fields.next().unwrap_or_default(), "uid")?;
    let gid = parse_id(fields.next().unwrap_or_default(), "gid")?;
    let _gecos = fields.next();
    let home = match fields.next().unwrap_or_default() {
        "" => None,
        home if home.starts_with('/') => Some(PathBuf::from(home)),
        home => return Err(format!("home {home:?} is not an absolute path")),
    };
    let _shell = fields.next();
    let extra = fields.next().unwrap_or_default();

    let mut account = Account {
        address: address.clone(),
        password: StoredPassword::parse(password),
        uid,
        gid,
        home,
        mail: None,
        quota: Quota::default(),
        max_message_size: None,
        folder_rights: FolderRights::Manage,
        pop3_scope: Pop3Scope::Inbox,
        pop3_apop_only: false,
        pop3_strip_message_id: false,
        line,
    };
    let mut mail_location = None;
    for field in extra.split_whitespace() {
        let (key, value) = field.split_once('=').unwrap_or((field, ""));
        // A passwd-file used as both passdb and userdb prefixes userdb
        // fields with `userdb_`; a userdb-only file does not.
        let key = key.strip_prefix("userdb_").unwrap_or(key);
        match key {
            "quota_rule" => apply_quota_rule(&mut account.quota, value)?,
            // Expanded below, once the home is known whatever the order.
            "mail" => mail_location = Some(value),
            "uid" => account.uid = parse_id(value, "userdb_uid")?,
            "gid" => account.gid = parse_id(value, "userdb_gid")?,
            "home" if value.starts_with('/') => account.home = Some(PathBuf::from(value)),
            "home" => return Err(format!("userdb_home {value:?} is not an absolute path")),
            FIELD_MAX_SIZE => {
                account.max_message_size = Some(
                    parse_size(value)
                        .ok_or_else(|| format!("{FIELD_MAX_SIZE}={value:?} is not a size"))?,
                )
            }
            FIELD_FOLDERS => {
                account.folder_rights = match value {
                    "yes" => FolderRights::Manage,
                    "no" => FolderRights::Fixed,
                    _ => return Err(format!("{FIELD_FOLDERS}={value:?}: expected yes or no")),
                }
            }
            FIELD_POP3 => {
                account.pop3_scope = match value {
                    "inbox" => Pop3Scope::Inbox,
                    "all" => Pop3Scope::AllFolders,
                    _ => return Err(format!("{FIELD_POP3}={value:?}: expected inbox or all")),
                }
            }
            FIELD_POP3_LOGIN => {
                account.pop3_apop_only = match value {
                    "apop" => true,
                    "any" => false,
                    _ => {
                        return Err(format!(
                            "{FIELD_POP3_LOGIN}={value:?}: expected apop or any"
                        ));
                    }
                }
            }
            FIELD_POP3_MESSAGE_ID => {
                account.pop3_strip_message_id = match value {
                    "strip" => true,
                    "keep" => false,
                    _ => {
                        return Err(format!(
                            "{FIELD_POP3_MESSAGE_ID}={value:?}: expected strip or keep"
                        ));
                    }
                }
            }
            // Dovecot's other fields (nopassword, allow_nets, ...) belong to
            // services that read them; delivery has no use for them.
            _ => {}
        }
    }
    if let Some(location) = mail_location {
        account.mail = Some(maildir_location(location, &account)?);
    }
    Ok(account)
}

fn parse_id(field: &str, what: &str) -> Result<Option<u32>, String> {
    if field.is_empty() {
        return Ok(None);
    }
    field
        .parse()
        .map(Some)
        .map_err(|_| format!("{what} {field:?} is not a number"))
}

/// Dovecot's `quota_rule=*:storage=1G` (kilobytes without a suffix),
/// `*:bytes=N`, `*:messages=N`, several joined by ':'. Only the `*` (whole
/// mailbox) rule applies to delivery; folder rules are accepted and ignored.
fn apply_quota_rule(quota: &mut Quota, rule: &str) -> Result<(), String> {
    let mut parts = rule.split(':');
    let root = parts.next().unwrap_or_default();
    if root != "*" {
        return Ok(());
    }
    for limit in parts {
        let (key, value) = limit
            .split_once('=')
            .ok_or_else(|| format!("quota_rule limit {limit:?} has no '='"))?;
        let bad = || format!("quota_rule {key}={value:?} is not a size");
        match key {
            "storage" => quota.bytes = Some(parse_size_with_unit(value, 1024).ok_or_else(bad)?),
            "bytes" => quota.bytes = Some(parse_size(value).ok_or_else(bad)?),
            "messages" => quota.messages = Some(value.parse().map_err(|_| bad())?),
            "ignore" | "noenforcing" => {}
            _ => return Err(format!("quota_rule limit {key:?} is unknown")),
        }
    }
    Ok(())
}

/// `maildir:PATH[:OPTIONS]` with Dovecot's `~` (home), `%u` (user), `%n`
/// (local part), `%d` (domain) and their `%L` lower-case forms.
fn maildir_location(value: &str, account: &Account) -> Result<PathBuf, String> {
    let path = value
        .strip_prefix("maildir:")
        .ok_or_else(|| format!("userdb_mail={value:?}: only maildir: locations are supported"))?;
    let path = path.split(':').next().unwrap_or_default();
    let mut expanded = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '~' if expanded.is_empty() => match &account.home {
                Some(home) => expanded.push_str(&home.to_string_lossy()),
                None => return Err("userdb_mail uses ~ but the line has no home".to_string()),
            },
            '%' => {
                if chars.peek() == Some(&'L') {
                    chars.next();
                }
                match chars.next() {
                    Some('u') => expanded.push_str(&account.address.to_string()),
                    Some('n') => expanded.push_str(account.address.local()),
                    Some('d') => expanded.push_str(account.address.domain()),
                    Some('%') => expanded.push('%'),
                    other => {
                        return Err(format!(
                            "userdb_mail: variable %{} is not supported",
                            other.unwrap_or(' ')
                        ));
                    }
                }
            }
            c => expanded.push(c),
        }
    }
    if !expanded.starts_with('/') {
        return Err(format!("userdb_mail path {expanded:?} is not absolute"));
    }
    Ok(PathBuf::from(expanded))
}

/// A passwd-file line taken apart for editing: the fields that are not
/// changed are written back as they were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountLine {
    fields: Vec<String>,
}

impl AccountLine {
    pub fn parse(line: &str) -> AccountLine {
        AccountLine {
            fields: line.splitn(8, ':').map(str::to_string).collect(),
        }
    }

    fn field_mut(&mut self, index: usize) -> &mut String {
        if self.fields.len() <= index {
            self.fields.resize(index + 1, String::new());
        }
        &mut self.fields[index]
    }

    /// Sets the password field (`{SCHEME}secret`).
    pub fn set_password(&mut self, stored: &str) {
        *self.field_mut(1) = stored.to_string();
    }

    /// Sets extra field `key` (replacing it with or without its `userdb_`
    /// prefix), or removes it with `None`.
    pub fn set_extra(&mut self, key: &str, value: Option<&str>) {
        let bare = key.strip_prefix("userdb_").unwrap_or(key);
        let extra = self.field_mut(7);
        let mut kept: Vec<String> = extra
            .split_whitespace()
            .filter(|field| {
                let name = field.split('=').next().unwrap_or_default();
                name.strip_prefix("userdb_").unwrap_or(name) != bare
            })
            .map(str::to_string)
            .collect();
        if let Some(value) = value {
            kept.push(format!("{key}={value}"));
        }
        *extra = kept.join(" ");
    }

    pub fn line(&self) -> String {
        self.fields.join(":")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Accounts, Vec<String>) {
        let mut errors = Vec::new();
        let accounts = Accounts::parse(Path::new("accounts"), text, &mut errors);
        (accounts, errors.iter().map(|e| e.to_string()).collect())
    }

    fn addr(text: &str) -> Address {
        Address::parse(text).unwrap()
    }

    #[test]
    fn dovecot_lines() {
        let (accounts, errors) = parse(concat!(
            "# Dovecot passwd-file\n",
            "alice@example.test:{PLAIN}pw:5000:5000::/srv/mail/alice::userdb_quota_rule=*:storage=1G\n",
            "bob@example.test:{PLAIN}pw:::::: userdb_mail=maildir:~/mail:LAYOUT=fs userdb_home=/home/bob\n",
            "carol@Example.Test:{PLAIN}pw\n",
            "dave@example.test:{PLAIN}pw:::::: userdb_mail=maildir:/var/vmail/%d/%n quota_rule=*:bytes=1000:messages=5 postern_max_message_size=1M postern_imap_folders=no postern_pop3_folders=all postern_pop3_login=apop postern_pop3_message_id=strip\n",
        ));
        assert!(errors.is_empty(), "{errors:?}");
        let alice = accounts.get(&addr("alice@example.test")).unwrap();
        assert_eq!((alice.uid, alice.gid), (Some(5000), Some(5000)));
        assert_eq!(alice.home.as_deref(), Some(Path::new("/srv/mail/alice")));
        assert_eq!(alice.quota.bytes, Some(1 << 30));
        assert_eq!(alice.line, 2);
        // userdb_home comes after userdb_mail here, as Dovecot allows.
        let bob = accounts.get(&addr("bob@example.test")).unwrap();
        assert_eq!(bob.mail.as_deref(), Some(Path::new("/home/bob/mail")));
        assert!(accounts.get(&addr("carol@example.test")).is_some());
        let dave = accounts.get(&addr("dave@example.test")).unwrap();
        assert_eq!(
            dave.mail.as_deref(),
            Some(Path::new("/var/vmail/example.test/dave"))
        );
        assert_eq!(
            dave.quota,
            Quota {
                bytes: Some(1000),
                messages: Some(5)
            }
        );
        assert_eq!(dave.max_message_size, Some(1 << 20));
        assert_eq!(dave.folder_rights, FolderRights::Fixed);
        assert_eq!(dave.pop3_scope, Pop3Scope::AllFolders);
        assert!(dave.pop3_strip_message_id);
        assert!(dave.pop3_apop_only);
    }

    #[test]
    fn line_edits_keep_the_other_fields() {
        let mut line = AccountLine::parse(
            "a@x.test:{PLAIN}old:5000:5000:Alice:/home/a::userdb_quota_rule=*:storage=1G nopassword",
        );
        line.set_password("{SHA512-CRYPT}$6$new");
        line.set_extra("userdb_quota_rule", Some("*:bytes=10"));
        line.set_extra("postern_imap_folders", Some("no"));
        assert_eq!(
            line.line(),
            "a@x.test:{SHA512-CRYPT}$6$new:5000:5000:Alice:/home/a::nopassword userdb_quota_rule=*:bytes=10 postern_imap_folders=no"
        );
        let mut short = AccountLine::parse("b@x.test:{PLAIN}x");
        short.set_extra("quota_rule", None);
        assert_eq!(short.line(), "b@x.test:{PLAIN}x::::::");
        short.set_extra("userdb_quota_rule", Some("*:bytes=5"));
        assert_eq!(
            short.line(),
            "b@x.test:{PLAIN}x::::::userdb_quota_rule=*:bytes=5"
        );
    }

    #[test]
    fn bad_lines_name_file_and_line_and_break_only_their_address() {
        let (accounts, errors) = parse(concat!(
            "good@example.test:{PLAIN}pw\n",
            "nodomain:{PLAIN}pw\n",
            "uid@example.test:{PLAIN}pw:abc\n",
            "../x@example.test:{PLAIN}pw\n",
            "rule@example.test:{PLAIN}pw:::::: quota_rule=*:storage=lots\n",
            "good@example.test:{PLAIN}other\n",
            "odd@example.test:{SSHA}abc\n",
        ));
        assert_eq!(
            errors,
            [
                "accounts:2: user \"nodomain\": no '@' in address",
                "accounts:3: uid@example.test: uid \"abc\" is not a number",
                "accounts:4: \"../x@example.test\" cannot name a mailbox directory",
                "accounts:5: rule@example.test: quota_rule storage=\"lots\" is not a size",
                "accounts:6: good@example.test is listed again (first at line 1)",
                "accounts:7: odd@example.test: password scheme not supported; logins will fail",
            ]
        );
        assert!(
            accounts
                .get(&addr("good@example.test"))
                .unwrap()
                .password
                .verify(b"pw")
        );
        assert!(accounts.is_broken(&addr("uid@example.test")));
        assert!(accounts.is_broken(&addr("rule@example.test")));
        assert!(accounts.get(&addr("odd@example.test")).is_some());
    }
}
