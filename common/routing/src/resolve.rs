//! Address resolution: recipient delimiter → alias → mailbox or system user
//! → host-wide postmaster/abuse → catch-all, recursively, with loops caught.
//! It reads the loaded maps and no other file but `:include:` lists, so `postern-local`,
//! `postern-auth` and `postern-admin explain` share it.

/// What becomes of mail for another host, in the words every program uses
/// (postern-local's status, `explain`, `forward set`, the sandbox's
/// banner).
pub const REMOTE_DELIVERY: &str = "such mail leaves the host: the queue hands it to postern-remote, which delivers it to the domain's mail servers";

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use postern_config::{
    ACCOUNTS_FILE, ALIASES_FILE, Account, Address, AliasEntry, AliasTarget, Config, DOMAINS_FILE,
    DomainKind, Maps, Settings,
};

/// Where mail for an address ends up.
#[derive(Clone, Debug)]
pub enum Destination {
    /// A virtual mailbox. `delivered_to` is the address that reached it
    /// (with its extension), for the `Delivered-To:` header.
    Mailbox {
        account: Box<Account>,
        delivered_to: Address,
        maildir: PathBuf,
    },
    /// The system user `name` of a local domain.
    SystemUser { name: String, delivered_to: Address },
    /// An address outside the local and virtual domains.
    Remote(Address),
    /// A command, mbox file or Maildir named by the host's aliases or an
    /// `:include:` list, handled as `owner` (the uid that owns the file
    /// that named it; 0 stands for the default user, nobody).
    Special {
        target: Special,
        owner: u32,
        delivered_to: Address,
    },
}

/// What a system alias can name besides addresses.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Special {
    Pipe(String),
    File(PathBuf),
    Maildir(PathBuf),
}

/// Why an address (or one target of its aliases) has nowhere to go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// 5.1.1: no alias, mailbox, user or catch-all.
    Unknown,
    /// 5.4.6: aliases lead back to an address already being expanded, or
    /// nest deeper than `alias_max_depth`.
    Loop,
    /// 4.3.5: the map line that would decide is bad; deferred until fixed.
    BrokenMap(String),
    /// 5.7.1: an address of the SRS domain that this host did not make
    /// (or made too long ago).
    BadSrs(String),
    /// 4.3.5: what decides cannot be read now (the SRS secrets).
    Unavailable(String),
}

impl ResolveError {
    /// RFC 3463 code and text for the status line.
    pub fn status(&self) -> (&'static str, String) {
        match self {
            ResolveError::Unknown => ("5.1.1", "user unknown".to_string()),
            ResolveError::Loop => ("5.4.6", "alias loop".to_string()),
            ResolveError::BrokenMap(at) => ("4.3.5", format!("bad map line at {at}")),
            ResolveError::BadSrs(why) => ("5.7.1", format!("not a valid SRS address: {why}")),
            ResolveError::Unavailable(why) => ("4.3.5", why.clone()),
        }
    }
}

/// The outcome for one address: its destinations, the targets that failed,
/// and the rules used, as `file:line: ...` steps.
#[derive(Debug, Default)]
pub struct Resolution {
    pub destinations: Vec<Destination>,
    pub failures: Vec<(Address, ResolveError)>,
    /// How the address was resolved, step by step, for `explain` and logs.
    pub trail: Vec<Step>,
    /// Addresses looked at so far, against `MAX_EXPANSIONS`.
    expansions: usize,
    /// The `:include:` lists being read (owner, device and inode),
    /// against include loops.
    includes: Vec<(u32, (u64, u64))>,
}

/// One step of a resolution. `level` nests: an address's rules sit one
/// level below it, an alias's targets two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub level: usize,
    pub text: String,
    /// Set on the step that reaches a system user, whose `.forward` and
    /// Maildir the caller can look up.
    pub system_user: Option<String>,
}

impl Resolution {
    fn note(&mut self, level: usize, text: String) {
        self.trail.push(Step {
            level,
            text,
            system_user: None,
        });
    }

    fn fail(&mut self, level: usize, address: &Address, error: ResolveError) {
        let (code, text) = error.status();
        self.note(level, format!("{code} {text}"));
        self.failures.push((address.clone(), error));
    }
}

/// Aliases that fan out and meet again (`a: b, c`, `b: d, e`, `c: d, e`,
/// ...) multiply the paths at every level; past this many lookups the
/// expansion stops, whatever the depth, so a customer's map cannot make
/// delivery do exponential work.
const MAX_EXPANSIONS: usize = 1000;

/// How deeply `:include:` lists may nest.
const MAX_INCLUDE_DEPTH: usize = 8;

pub struct Resolver<'a> {
    settings: &'a Settings,
    maps: &'a Maps,
}

impl<'a> Resolver<'a> {
    pub fn new(settings: &'a Settings, maps: &'a Maps) -> Resolver<'a> {
        Resolver { settings, maps }
    }

    /// The resolver of a loaded configuration.
    pub fn of(config: &'a Config) -> Resolver<'a> {
        Resolver::new(&config.settings, &config.maps)
    }

    pub fn resolve(&self, address: &Address) -> Resolution {
        let mut resolution = Resolution::default();
        let mut path = Vec::new();
        self.expand(address, &mut path, &mut resolution, false);
        dedupe(&mut resolution.destinations);
        resolution
    }

    /// An address of the SRS domain: a bounce to mail this host forwarded,
    /// sent back to the original sender once its hash and age are checked.
    fn unwrap_srs(&self, address: &Address, level: usize, out: &mut Resolution) {
        let srs = match crate::srs::load(self.settings) {
            Ok(Some(srs)) => srs,
            Ok(None) => return out.fail(level, address, ResolveError::Unknown),
            Err(why) => return out.fail(level, address, ResolveError::Unavailable(why)),
        };
        let now = postern_config::unix_now();
        match srs
            .reverse(&address.to_string(), now)
            .map(|a| Address::parse(&a))
        {
            Ok(Ok(original)) => {
                out.note(
                    level,
                    format!("SRS: {address} was rewritten from {original}"),
                );
                out.destinations.push(Destination::Remote(original));
            }
            Ok(Err(e)) => out.fail(level, address, ResolveError::BadSrs(e.to_string())),
            Err(e) => out.fail(level, address, ResolveError::BadSrs(e.to_string())),
        }
    }

    /// The domain's kind; the host's own name is always local.
    pub fn domain_kind(&self, domain: &str) -> Option<DomainKind> {
        if domain == self.settings.hostname {
            return Some(DomainKind::Local);
        }
        self.maps.domains.kind(domain)
    }

    /// The Maildir of a virtual mailbox: Dovecot's `userdb_mail` if the
    /// line has one, else `home/<home_maildir>`, else
    /// `<mail_root>/<domain>/<localpart>/Maildir`.
    pub fn maildir_of(&self, account: &Account) -> PathBuf {
        if let Some(mail) = &account.mail {
            return mail.clone();
        }
        if let Some(home) = &account.home {
            return home.join(&self.settings.home_maildir);
        }
        self.settings
            .mail_root
            .join(account.address.domain())
            .join(account.address.local())
            .join("Maildir")
    }

    fn expand(
        &self,
        address: &Address,
        path: &mut Vec<Address>,
        out: &mut Resolution,
        only_mailbox: bool,
    ) {
        let level = 2 * path.len() + 1;
        out.expansions += 1;
        if out.expansions > MAX_EXPANSIONS {
            if out.expansions == MAX_EXPANSIONS + 1 {
                out.note(
                    level,
                    format!("aliases expand to more than {MAX_EXPANSIONS} addresses"),
                );
                out.fail(level, address, ResolveError::Loop);
            }
            return;
        }
        if path.len() > self.settings.alias_max_depth {
            out.note(
                level,
                format!("aliases nest deeper than {}", self.settings.alias_max_depth),
            );
            out.fail(level, address, ResolveError::Loop);
            return;
        }
        let domain = address.domain();
        if self.maps.domains.is_broken(domain) {
            out.fail(level, address, broken(DOMAINS_FILE, domain));
            return;
        }
        if crate::srs::is_srs_domain(self.settings, domain) {
            return self.unwrap_srs(address, level, out);
        }
        let Some(kind) = self.domain_kind(domain) else {
            out.note(
                level,
                format!("{domain} is neither a local nor a virtual domain: {REMOTE_DELIVERY}"),
            );
            out.destinations.push(Destination::Remote(address.clone()));
            return;
        };
        let base = address.without_extension(&self.settings.recipient_delimiter);
        let candidates: Vec<&Address> = std::iter::once(address).chain(base.as_ref()).collect();

        for (index, candidate) in candidates.iter().enumerate() {
            if index > 0 {
                out.note(
                    level,
                    format!(
                        "recipient delimiter {:?}: nothing for {address}, trying {candidate}",
                        self.settings.recipient_delimiter
                    ),
                );
            }
            if !only_mailbox {
                let key = candidate.to_string();
                if self.maps.aliases.is_broken(&key) {
                    out.fail(level, address, broken(ALIASES_FILE, &key));
                    return;
                }
                if let Some(entry) = self.maps.aliases.get(&key) {
                    return self.expand_alias(entry, address, path, out);
                }
                if kind == DomainKind::Local {
                    if self.maps.aliases.is_broken(candidate.local()) {
                        out.fail(level, address, broken(ALIASES_FILE, candidate.local()));
                        return;
                    }
                    if let Some(entry) = self.maps.aliases.get(candidate.local()) {
                        return self.expand_alias(entry, address, path, out);
                    }
                }
            }
            if kind == DomainKind::Virtual {
                if self.maps.accounts.is_broken(candidate) {
                    out.fail(
                        level,
                        address,
                        broken(ACCOUNTS_FILE, &candidate.to_string()),
                    );
                    return;
                }
                if let Some(account) = self.maps.accounts.get(candidate) {
                    let maildir = self.maildir_of(account);
                    out.note(
                        level,
                        format!(
                            "{ACCOUNTS_FILE}:{}: mailbox {candidate} → {}/",
                            account.line,
                            maildir.display()
                        ),
                    );
                    out.destinations.push(Destination::Mailbox {
                        account: Box::new(account.clone()),
                        delivered_to: address.clone(),
                        maildir,
                    });
                    return;
                }
            }
        }
        let base = base.as_ref().unwrap_or(address);
        if kind == DomainKind::Local {
            out.trail.push(Step {
                level,
                text: format!("{domain} is local: system user {}", base.local()),
                system_user: Some(base.local().to_string()),
            });
            out.destinations.push(Destination::SystemUser {
                name: base.local().to_string(),
                delivered_to: address.clone(),
            });
            return;
        }
        if only_mailbox {
            out.note(level, format!("no mailbox {address}"));
            out.fail(level, address, ResolveError::Unknown);
            return;
        }
        // RFC 5321 section 4.5.1 and RFC 2142: postmaster (and abuse) must
        // reach someone at every domain; the host-wide alias does, ahead of
        // a catch-all that may be a customer's spam bucket.
        if matches!(base.local(), "postmaster" | "abuse") {
            if self.maps.aliases.is_broken(base.local()) {
                out.fail(level, address, broken(ALIASES_FILE, base.local()));
                return;
            }
            if let Some(entry) = self.maps.aliases.get(base.local()) {
                return self.expand_alias(entry, address, path, out);
            }
        }
        let catch_all = format!("@{domain}");
        if self.maps.aliases.is_broken(&catch_all) {
            out.fail(level, address, broken(ALIASES_FILE, &catch_all));
            return;
        }
        if let Some(entry) = self.maps.aliases.get(&catch_all) {
            return self.expand_alias(entry, address, path, out);
        }
        out.note(level, "no alias, mailbox or catch-all".to_string());
        out.fail(level, address, ResolveError::Unknown);
    }

    fn expand_alias(
        &self,
        entry: &AliasEntry,
        address: &Address,
        path: &mut Vec<Address>,
        out: &mut Resolution,
    ) {
        let level = 2 * path.len() + 1;
        let what = if entry.key.starts_with('@') {
            " (catch-all)"
        } else if !entry.key.contains('@')
            && self.domain_kind(address.domain()) != Some(DomainKind::Local)
        {
            " (host-wide)"
        } else {
            ""
        };
        let shown: Vec<String> = entry
            .targets
            .iter()
            .map(|t| self.show(t, address))
            .collect();
        out.note(
            level,
            format!(
                "{ALIASES_FILE}:{}: {}{what} → {}",
                entry.line,
                entry.key,
                shown.join(", ")
            ),
        );
        let owner = self.maps.aliases.owner;
        self.expand_targets(&entry.targets, owner, ALIASES_FILE, address, path, out);
    }

    /// How a target reads in a step: addresses as they resolve.
    fn show(&self, target: &AliasTarget, address: &Address) -> String {
        match self.target_address(target, address) {
            Some(resolved) => resolved.to_string(),
            None => target.to_string(),
        }
    }

    fn target_address(&self, target: &AliasTarget, address: &Address) -> Option<Address> {
        match target {
            AliasTarget::Address(a) => Some(a.clone()),
            AliasTarget::LocalUser(name) => Address::new(name, &self.settings.hostname).ok(),
            AliasTarget::Domain(domain) => Some(address.with_domain(domain)),
            _ => None,
        }
    }

    /// The targets of an alias or an `:include:` list named by a file that
    /// `owner` owns.
    fn expand_targets(
        &self,
        targets: &[AliasTarget],
        owner: u32,
        named_by: &str,
        address: &Address,
        path: &mut Vec<Address>,
        out: &mut Resolution,
    ) {
        let level = 2 * path.len() + 1;
        path.push(address.clone());
        for target in targets {
            out.note(level + 1, self.show(target, address));
            let special = match target {
                AliasTarget::Pipe(command) => Special::Pipe(command.clone()),
                AliasTarget::File(file) => Special::File(file.clone()),
                AliasTarget::Maildir(dir) => Special::Maildir(dir.clone()),
                AliasTarget::Include(list) => {
                    self.expand_include(list, address, path, out);
                    continue;
                }
                _ => {
                    let Some(target) = self.target_address(target, address) else {
                        // A name the parser let through that is no address
                        // at this host: the line's problem, so deferred.
                        out.fail(
                            level + 2,
                            address,
                            ResolveError::BrokenMap(format!("{named_by}: {target}")),
                        );
                        continue;
                    };
                    if target == *address {
                        // `bob: bob, archive` keeps a copy in bob's own
                        // mailbox, as in sendmail: the alias is not applied
                        // again.
                        self.expand(&target, path, out, true);
                    } else if path.contains(&target) {
                        out.note(level + 2, format!("alias loop back to {target}"));
                        out.fail(level + 2, &target, ResolveError::Loop);
                    } else {
                        self.expand(&target, path, out, false);
                    }
                    continue;
                }
            };
            if named_by == ALIASES_FILE && self.maps.aliases.writable_by_others {
                out.note(
                    level + 2,
                    "the aliases file is group- or world-writable: it runs and writes nothing"
                        .into(),
                );
                out.fail(
                    level + 2,
                    address,
                    ResolveError::BrokenMap(format!("{ALIASES_FILE}: writable by others")),
                );
                continue;
            }
            let runs_as = if owner == 0 {
                format!("nobody, since root owns {named_by}")
            } else {
                format!("uid {owner}, who owns {named_by}")
            };
            let verb = match &special {
                Special::Pipe(_) => "run by /bin/sh",
                Special::File(_) => "appended as mbox",
                Special::Maildir(_) => "delivered to Maildir",
            };
            out.note(
                level + 2,
                format!("{verb} as {runs_as}, who owns {named_by}"),
            );
            out.destinations.push(Destination::Special {
                target: special,
                owner,
                delivered_to: address.clone(),
            });
        }
        path.pop();
    }

    /// `:include:/path`: a list of targets in a file, trusted as far as its
    /// owner: what it runs, runs as them. A list may include another only
    /// if the same user (or root, for root's lists) owns it, so a list's
    /// owner cannot make delivery read or write another user's files.
    fn expand_include(
        &self,
        list: &std::path::Path,
        address: &Address,
        path: &mut Vec<Address>,
        out: &mut Resolution,
    ) {
        let level = 2 * path.len() + 1;
        let shown = list.display().to_string();
        out.expansions += 1;
        if out.expansions > MAX_EXPANSIONS || out.includes.len() >= MAX_INCLUDE_DEPTH {
            out.note(
                level,
                format!("{shown}: :include: lists nest or repeat too much"),
            );
            out.fail(level, address, ResolveError::Loop);
            return;
        }
        let (owner, text) = match crate::forward::read_safe(list, None) {
            Ok(read) => read,
            Err(why) => {
                out.note(level, format!("cannot use {shown}: {why}"));
                out.fail(level, address, ResolveError::BrokenMap(shown));
                return;
            }
        };
        let identity = std::fs::metadata(list)
            .map(|m| (m.dev(), m.ino()))
            .unwrap_or_default();
        if out.includes.iter().any(|(_, id)| *id == identity) {
            out.note(level, format!("{shown} includes itself"));
            out.fail(level, address, ResolveError::Loop);
            return;
        }
        if let Some((including_owner, _)) = out.includes.last()
            && owner != *including_owner
            && !(owner == 0 && *including_owner == 0)
        {
            out.note(
                level,
                format!("{shown} belongs to uid {owner}, not to uid {including_owner}, whose list names it"),
            );
            out.fail(level, address, ResolveError::BrokenMap(shown));
            return;
        }
        let mut targets = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            for item in postern_config::split_list(line) {
                match postern_config::parse_target("", &item) {
                    Ok(target) => targets.push(target),
                    Err(why) => out.note(level, format!("{shown}:{}: skipped: {why}", index + 1)),
                }
            }
        }
        let listed: Vec<String> = targets.iter().map(|t| self.show(t, address)).collect();
        out.note(
            level,
            format!("{shown} (uid {owner}) → {}", listed.join(", ")),
        );
        out.includes.push((owner, identity));
        // The list's targets nest under the include step, as an alias's do.
        path.push(address.clone());
        self.expand_targets(&targets, owner, &shown, address, path, out);
        path.pop();
        out.includes.pop();
    }
}

fn broken(file: &str, key: &str) -> ResolveError {
    ResolveError::BrokenMap(format!("{file} for {key}"))
}

/// The same mailbox reached twice (two aliases naming it) gets one copy.
fn dedupe(destinations: &mut Vec<Destination>) {
    let mut seen = std::collections::HashSet::new();
    destinations.retain(|d| {
        let key = match d {
            Destination::Mailbox { maildir, .. } => format!("m:{}", maildir.display()),
            Destination::SystemUser { name, .. } => format!("u:{name}"),
            Destination::Remote(address) => format!("r:{address}"),
            Destination::Special { target, owner, .. } => format!("s:{target:?}:{owner}"),
        };
        seen.insert(key)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn maps(domains: &str, accounts: &str, aliases: &str) -> Maps {
        let mut errors = Vec::new();

        Maps {
            domains: postern_config::Domains::parse(Path::new("domains"), domains, &mut errors),
            accounts: postern_config::Accounts::parse(Path::new("accounts"), accounts, &mut errors),
            aliases: postern_config::Aliases::parse(Path::new("aliases"), aliases, &mut errors),
            errors,
        }
    }

    fn settings() -> Settings {
        Settings {
            hostname: "shell.test".into(),
            mail_root: "/mail".into(),
            ..Settings::default()
        }
    }

    fn outcome(resolution: &Resolution) -> Vec<String> {
        let mut out: Vec<String> = resolution
            .destinations
            .iter()
            .map(|d| match d {
                Destination::Mailbox {
                    maildir,
                    delivered_to,
                    ..
                } => format!("{delivered_to} {}", maildir.display()),
                Destination::SystemUser { name, .. } => format!("user {name}"),
                Destination::Remote(a) => format!("remote {a}"),
                Destination::Special { target, owner, .. } => format!("{target:?} as {owner}"),
            })
            .collect();
        out.extend(
            resolution
                .failures
                .iter()
                .map(|(a, e)| format!("{a} {}", e.status().0)),
        );
        out
    }

    const DOMAINS: &str = "example.test virtual\nother.test virtual\n";
    const ACCOUNTS: &str = "a@example.test:{PLAIN}x\nb@example.test:{PLAIN}x\nc@example.test:{PLAIN}x:::::: userdb_mail=maildir:/srv/c\nbob@other.test:{PLAIN}x\n";

    fn resolve(aliases: &str, address: &str) -> Vec<String> {
        let maps = maps(DOMAINS, ACCOUNTS, aliases);
        let settings = settings();
        outcome(&Resolver::new(&settings, &maps).resolve(&Address::parse(address).unwrap()))
    }

    #[test]
    fn mailbox_extension_and_unknown() {
        assert_eq!(
            resolve("", "A@Example.test"),
            ["a@example.test /mail/example.test/a/Maildir"]
        );
        assert_eq!(
            resolve("", "a+lists@example.test"),
            ["a+lists@example.test /mail/example.test/a/Maildir"]
        );
        assert_eq!(resolve("", "c@example.test"), ["c@example.test /srv/c"]);
        assert_eq!(resolve("", "zz@example.test"), ["zz@example.test 5.1.1"]);
        assert_eq!(resolve("", "x@elsewhere.test"), ["remote x@elsewhere.test"]);
        assert_eq!(resolve("", "root@shell.test"), ["user root"]);
    }

    #[test]
    fn aliases_catch_all_and_full_address_precedence() {
        let aliases = "team@example.test: a@example.test, b@example.test, c@example.test\n\
                       a+vip@example.test: b@example.test\n\
                       @example.test: a@example.test\n\
                       @old.test: @other.test\n";
        assert_eq!(
            resolve(aliases, "team@example.test"),
            [
                "a@example.test /mail/example.test/a/Maildir",
                "b@example.test /mail/example.test/b/Maildir",
                "c@example.test /srv/c"
            ]
        );
        assert_eq!(
            resolve(aliases, "a+vip@example.test"),
            ["b@example.test /mail/example.test/b/Maildir"]
        );
        assert_eq!(
            resolve(aliases, "nobody@example.test"),
            ["a@example.test /mail/example.test/a/Maildir"]
        );
    }

    #[test]
    fn domain_rewrite_catch_all() {
        let maps = maps(
            "example.test virtual\nother.test virtual\nold.test virtual\n",
            ACCOUNTS,
            "@old.test: @other.test\n",
        );
        let settings = settings();
        let r = Resolver::new(&settings, &maps).resolve(&Address::parse("bob@old.test").unwrap());
        assert_eq!(outcome(&r), ["bob@other.test /mail/other.test/bob/Maildir"]);
        assert_eq!(
            r.trail[0].text,
            "aliases:1: @old.test (catch-all) → bob@other.test"
        );
    }

    #[test]
    fn loops_self_copies_and_depth() {
        assert_eq!(
            resolve(
                "x@example.test: y@example.test\ny@example.test: x@example.test\n",
                "x@example.test"
            ),
            ["x@example.test 5.4.6"]
        );
        assert_eq!(
            resolve(
                "a@example.test: a@example.test, b@example.test\n",
                "a@example.test"
            ),
            [
                "a@example.test /mail/example.test/a/Maildir",
                "b@example.test /mail/example.test/b/Maildir"
            ]
        );
        let chain: String = (0..30)
            .map(|i| format!("l{i}@example.test: l{}@example.test\n", i + 1))
            .collect();
        assert_eq!(
            resolve(&chain, "l0@example.test"),
            ["l21@example.test 5.4.6"]
        );
    }

    #[test]
    fn fan_out_that_meets_again_stops_early() {
        // 2^20 paths from 40 lines.
        let mut aliases = String::new();
        for i in 0..20 {
            aliases.push_str(&format!(
                "x{i}@example.test: x{}@example.test, y{}@example.test\n",
                i + 1,
                i + 1
            ));
            aliases.push_str(&format!(
                "y{i}@example.test: x{}@example.test, y{}@example.test\n",
                i + 1,
                i + 1
            ));
        }
        aliases.push_str("x20@example.test: a@example.test\ny20@example.test: a@example.test\n");
        let outcome = resolve(&aliases, "x0@example.test");
        assert!(outcome.iter().any(|o| o.ends_with("5.4.6")), "{outcome:?}");
    }

    #[test]
    fn host_aliases_name_commands_and_files_run_as_the_aliases_owner() {
        let mut maps = maps(
            DOMAINS,
            ACCOUNTS,
            "log: \"|logger\", /var/log/m, a@example.test\n",
        );
        maps.aliases.owner = 42;
        let settings = settings();
        let r = Resolver::new(&settings, &maps).resolve(&Address::parse("log@shell.test").unwrap());
        assert_eq!(
            outcome(&r),
            [
                "Pipe(\"logger\") as 42",
                "File(\"/var/log/m\") as 42",
                "a@example.test /mail/example.test/a/Maildir"
            ]
        );
        let r = Resolver::new(&settings, &maps).resolve(&Address::parse("x@example.test").unwrap());
        assert_eq!(outcome(&r), ["x@example.test 5.1.1"]);
    }

    /// Found by the resolve fuzz target: a bare-name target that makes no
    /// local part once used to panic; the line is now refused and deferred.
    #[test]
    fn a_bare_target_that_is_no_local_part_defers() {
        assert_eq!(
            resolve(
                "team@example.test: a@example.test, tea:include:.test\n",
                "team@example.test"
            ),
            ["team@example.test 4.3.5"]
        );
    }

    #[test]
    fn postmaster_always_resolves_and_dedupes() {
        let aliases = "postmaster: a@example.test\nabuse: a@example.test\nboth@example.test: a@example.test, a@example.test, postmaster@example.test\n";
        assert_eq!(
            resolve(aliases, "postmaster@other.test"),
            ["a@example.test /mail/example.test/a/Maildir"]
        );
        assert_eq!(
            resolve(aliases, "both@example.test"),
            ["a@example.test /mail/example.test/a/Maildir"]
        );
    }

    #[test]
    fn broken_lines_defer() {
        assert_eq!(
            resolve("team@example.test: x@@\n", "team@example.test"),
            ["team@example.test 4.3.5"]
        );
        // Bare names: a local user's alias, and the host-wide postmaster,
        // which must not fall through to a customer's catch-all.
        let aliases = "bob: :include:relative\npostmaster: a@example.test, :include:relative\n@example.test: a@example.test\n";
        assert_eq!(resolve(aliases, "bob@shell.test"), ["bob@shell.test 4.3.5"]);
        assert_eq!(
            resolve(aliases, "postmaster@example.test"),
            ["postmaster@example.test 4.3.5"]
        );
        let maps = maps("bad.test remote\n", "", "");
        let settings = settings();
        let r = Resolver::new(&settings, &maps).resolve(&Address::parse("a@bad.test").unwrap());
        assert_eq!(outcome(&r), ["a@bad.test 4.3.5"]);
    }
}
