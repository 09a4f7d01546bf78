//! `mailbox add`, `del`, `list`, `passwd`, `quota` and `rights`: the
//! accounts map and each mailbox's Maildir, made as its owner.

use std::path::Path;

use anyhow::{Context, bail};
use postern_config::edit::MapKind;
use postern_config::{Account, AccountLine, Accounts, Address, Config, DomainKind, parse_size};
use postern_maildir::Maildir;

use crate::maps::{at, edit, load};

fn address(text: &str) -> anyhow::Result<Address> {
    let address = Address::parse(text).map_err(|e| anyhow::anyhow!("{text:?}: {e}"))?;
    if !address.is_path_safe() {
        bail!("{address} cannot name a mailbox directory");
    }
    Ok(address)
}

/// Who owns `account`'s mailbox, for acting as them.
fn owner(config: &Config, account: &Account) -> anyhow::Result<(u32, u32, Option<String>)> {
    account.owner(&config.settings.mail_owner).with_context(|| {
        format!(
            "mail_owner \"{}\" is not a user",
            config.settings.mail_owner
        )
    })
}

/// `mailbox add ADDR [--password-file FILE] [--quota SIZE]`: one line in
/// the accounts file (SHA512-CRYPT, Dovecot's format) and the Maildir,
/// made by the mail owner. Everything that can fail is checked, and the
/// Maildir made, before the line is added, so a failure leaves no
/// half-added mailbox behind.
pub fn add(
    dir: &Path,
    address_text: &str,
    password_file: Option<&Path>,
    quota: Option<&str>,
) -> anyhow::Result<String> {
    let config = load(dir)?;
    let address = address(address_text)?;
    if postern_routing::Resolver::of(&config).domain_kind(address.domain())
        != Some(DomainKind::Virtual)
    {
        bail!(
            "{} is not a virtual domain: postern-admin domain add {}",
            address.domain(),
            address.domain()
        );
    }
    if config.maps.accounts.get(&address).is_some() || config.maps.accounts.is_broken(&address) {
        bail!(
            "{address} already has a line in {}",
            dir.join("accounts").display()
        );
    }
    let mut line = AccountLine::parse(&address.to_string());
    line.set_password(&postern_password::hash_sha512_crypt(
        crate::password::read(password_file)?.as_bytes(),
    )?);
    if let Some(quota) = quota {
        line.set_extra("userdb_quota_rule", Some(&quota_rule(quota)?));
    } else {
        line.set_extra("userdb_quota_rule", None);
    }
    let line = line.line();

    let mut errors = Vec::new();
    let parsed = Accounts::parse(&dir.join("accounts"), &line, &mut errors);
    let account = parsed
        .get(&address)
        .context("the new accounts line does not parse")?;
    let maildir_path = postern_routing::Resolver::of(&config).maildir_of(account);
    let (uid, gid, owner_name) = owner(&config, account)?;
    // SECURITY: the Maildir is made by its owner, never by root, so a
    // symlink planted under the mail root cannot turn into a root chown.
    postern_privilege::run_as(uid, gid, owner_name.as_deref(), &[], || {
        Maildir::create(&maildir_path)
            .map(|_| String::new())
            .map_err(|e| format!("create {}: {e}", maildir_path.display()))
    })
    .map_err(anyhow::Error::msg)?;

    edit(dir, MapKind::Accounts, |map| {
        let key = address.to_string();
        if map.find(&key).is_some() {
            bail!(
                "{address} already has a line in {}",
                dir.join("accounts").display()
            );
        }
        let number = map.append(vec![line.clone()]);
        Ok(format!(
            "added {address} at {}, Maildir {}",
            at(dir, MapKind::Accounts, number),
            maildir_path.display()
        ))
    })
}

/// `*:bytes=N` for Dovecot's quota_rule.
fn quota_rule(size: &str) -> anyhow::Result<String> {
    let bytes =
        parse_size(size).with_context(|| format!("quota {size:?} is not a size (like 500M)"))?;
    Ok(format!("*:bytes={bytes}"))
}

/// Changes one accounts line.
fn change_line(
    dir: &Path,
    address_text: &str,
    what: &str,
    change: impl FnOnce(&mut AccountLine) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let address = address(address_text)?;
    edit(dir, MapKind::Accounts, |map| {
        let Some(range) = map.find(&address.to_string()) else {
            bail!("no mailbox {address} in {}", dir.join("accounts").display());
        };
        let mut line = AccountLine::parse(&map.lines(range.clone())[0]);
        change(&mut line)?;
        let number = range.start + 1;
        map.replace(range, vec![line.line()]);
        Ok(format!(
            "{what} of {address} at {}",
            at(dir, MapKind::Accounts, number)
        ))
    })
}

pub fn passwd(dir: &Path, address: &str, password_file: Option<&Path>) -> anyhow::Result<String> {
    let password = crate::password::read(password_file)?;
    let stored = postern_password::hash_sha512_crypt(password.as_bytes())?;
    change_line(dir, address, "changed the password", |line| {
        line.set_password(&stored);
        Ok(())
    })
}

/// `mailbox quota ADDR SIZE|none`.
pub fn quota(dir: &Path, address: &str, size: &str) -> anyhow::Result<String> {
    let rule = if size == "none" {
        None
    } else {
        Some(quota_rule(size)?)
    };
    change_line(dir, address, "set the quota", |line| {
        line.set_extra("userdb_quota_rule", rule.as_deref());
        Ok(())
    })
}

/// What `mailbox rights` changes: each `None` is left as it is.
pub struct Rights<'a> {
    pub imap_folders: Option<&'a str>,
    pub pop3_folders: Option<&'a str>,
    pub pop3_login: Option<&'a str>,
    pub pop3_message_id: Option<&'a str>,
    pub max_message_size: Option<&'a str>,
}

/// `mailbox rights ADDR ...`: per-account rights and limits.
pub fn rights(dir: &Path, address: &str, rights: &Rights) -> anyhow::Result<String> {
    let fields = [
        ("postern_imap_folders", rights.imap_folders),
        ("postern_pop3_folders", rights.pop3_folders),
        ("postern_pop3_login", rights.pop3_login),
        ("postern_pop3_message_id", rights.pop3_message_id),
    ];
    if fields.iter().all(|(_, v)| v.is_none()) && rights.max_message_size.is_none() {
        bail!(
            "nothing to change: give --imap-folders, --pop3-folders, --pop3-login, \
             --pop3-message-id or --max-message-size"
        );
    }
    change_line(dir, address, "set the rights", |line| {
        for (field, value) in fields {
            if let Some(value) = value {
                line.set_extra(field, Some(value));
            }
        }
        match rights.max_message_size {
            Some("none") => line.set_extra("postern_max_message_size", None),
            Some(size) => {
                parse_size(size).with_context(|| format!("{size:?} is not a size"))?;
                line.set_extra("postern_max_message_size", Some(size));
            }
            None => {}
        }
        Ok(())
    })
}

/// `mailbox del ADDR [--purge]`: the line goes; the Maildir stays unless
/// `--purge`, since mail is easier to delete later than to get back.
pub fn del(dir: &Path, address_text: &str, purge: bool) -> anyhow::Result<String> {
    let config = load(dir)?;
    let address = address(address_text)?;
    let account = config.maps.accounts.get(&address).cloned();
    let mut message = edit(dir, MapKind::Accounts, |map| {
        let Some(range) = map.find(&address.to_string()) else {
            bail!("no mailbox {address} in {}", dir.join("accounts").display());
        };
        let number = range.start + 1;
        map.remove_all(&address.to_string());
        Ok(format!(
            "removed {address} (was {})",
            at(dir, MapKind::Accounts, number)
        ))
    })?;
    if let Some(account) = account {
        let maildir = postern_routing::Resolver::of(&config).maildir_of(&account);
        if purge {
            let (uid, gid, name) = owner(&config, &account)?;
            postern_privilege::run_as(uid, gid, name.as_deref(), &[], || {
                std::fs::remove_dir_all(&maildir)
                    .map(|_| String::new())
                    .map_err(|e| format!("remove {}: {e}", maildir.display()))
            })
            .map_err(anyhow::Error::msg)?;
            message.push_str(&format!("; removed {}", maildir.display()));
        } else {
            message.push_str(&format!("; its mail stays in {}", maildir.display()));
        }
    }
    Ok(message)
}

pub fn list(dir: &Path, domain: Option<&str>) -> anyhow::Result<String> {
    let config = load(dir)?;
    let mut accounts: Vec<_> = config
        .maps
        .accounts
        .iter()
        .filter(|a| domain.is_none_or(|d| a.address.domain() == d.to_lowercase()))
        .collect();
    accounts.sort_by(|a, b| a.address.cmp(&b.address));
    let rows: Vec<String> = accounts
        .iter()
        .map(|a| {
            let quota = match a
                .quota
                .bytes
                .or(Some(config.settings.default_quota).filter(|&q| q > 0))
            {
                Some(bytes) => format!("quota={bytes}"),
                None => "quota=none".to_string(),
            };
            format!(
                "{} {quota} {}",
                a.address,
                postern_routing::Resolver::of(&config)
                    .maildir_of(a)
                    .display()
            )
        })
        .collect();
    Ok(rows.join("\n"))
}
