use std::path::Path;

use anyhow::{Context, bail};
use postern_config::{Accounts, Address, Config, DomainKind, parse_size};
use postern_maildir::Maildir;

/// `mailbox add ADDR --password-file FILE [--quota SIZE]`: one line in the
/// accounts file (SHA512-CRYPT, Dovecot's format) and the Maildir, made by
/// the mail owner. Everything that can fail is checked, and the Maildir
/// made, before the line is added, so a failure leaves no half-added
/// mailbox behind.
pub fn add(
    dir: &Path,
    address: &str,
    password_file: &Path,
    quota: Option<&str>,
) -> anyhow::Result<String> {
    let config = Config::load(dir)?;
    let address = Address::parse(address).map_err(|e| anyhow::anyhow!("{address:?}: {e}"))?;
    if !address.is_path_safe() {
        bail!("{address} cannot name a mailbox directory");
    }
    if config.resolver().domain_kind(address.domain()) != Some(DomainKind::Virtual) {
        bail!(
            "{} is not a virtual domain: add \"{} virtual\" to {}",
            address.domain(),
            address.domain(),
            dir.join("domains").display()
        );
    }
    let accounts_path = dir.join("accounts");
    if config.maps.accounts.get(&address).is_some() || config.maps.accounts.is_broken(&address) {
        bail!(
            "{address} already has a line in {}",
            accounts_path.display()
        );
    }
    let mut extra = Vec::new();
    if let Some(quota) = quota {
        let bytes = parse_size(quota)
            .with_context(|| format!("quota {quota:?} is not a size (like 500M)"))?;
        extra.push(format!("userdb_quota_rule=*:bytes={bytes}"));
    }
    let password = crate::read_password(Some(password_file))?;
    let hash = postern_password::hash_sha512_crypt(password.as_bytes())?;
    let line = format!("{address}:{hash}::::::{}", extra.join(" "));

    let mut errors = Vec::new();
    let parsed = Accounts::parse(&accounts_path, &line, &mut errors);
    let account = parsed
        .get(&address)
        .context("the new accounts line does not parse")?;
    let maildir_path = config.resolver().maildir_of(account);
    let (uid, gid, owner_name) =
        config.settings.mail_owner.resolve().with_context(|| {
            format!("mail_owner {:?} is not a user", config.settings.mail_owner)
        })?;
    // SECURITY: the Maildir is made by its owner, never by root, so a
    // symlink planted under the mail root cannot turn into a root chown.
    postern_privilege::run_as(uid, gid, owner_name.as_deref(), &[], || {
        Maildir::create(&maildir_path)
            .map(|_| String::new())
            .map_err(|e| format!("create {}: {e}", maildir_path.display()))
    })
    .map_err(anyhow::Error::msg)?;

    let number = postern_config::edit::append_line(&accounts_path, &line, |current| {
        let mut errors = Vec::new();
        let accounts = Accounts::parse(&accounts_path, current, &mut errors);
        if accounts.get(&address).is_some() || accounts.is_broken(&address) {
            return Err(format!(
                "{address} already has a line in {}",
                accounts_path.display()
            ));
        }
        Ok(())
    })
    .map_err(anyhow::Error::msg)?;
    Ok(format!(
        "added {address} ({}:{number}), Maildir {}",
        accounts_path.display(),
        maildir_path.display()
    ))
}
