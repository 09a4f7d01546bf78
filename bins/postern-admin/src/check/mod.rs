//! `check`: every problem an admin can fix before mail suffers from it.
//! Errors are map lines that do not load (`file:line: what is wrong`),
//! directories mail cannot pass through and secrets others could read; warnings are lines that load but
//! will not do what they seem to.

mod directories;
mod remote;

use std::path::Path;

use postern_config::{Address, Config, DomainKind, Maps, Settings};
use postern_routing::{Destination, ResolveError};

pub fn run(dir: &Path) -> i32 {
    // Every error of postern.toml, and the rest checked as if its bad
    // lines were not there.
    let loaded = Settings::load_salvaged(dir).and_then(|(settings, errors)| {
        let maps = Maps::load(dir)?;
        let (_, masquerade) = postern_config::Masquerade::load(dir)?;
        let config = Config {
            dir: dir.to_path_buf(),
            settings,
            maps,
        };
        Ok((config, errors, masquerade))
    });
    let (config, settings_errors, masquerade_errors) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return crate::EXIT_CONFIG;
        }
    };
    let directory_errors = directories::errors(&config.settings);
    let remote_errors = remote::errors(dir, &config.settings);
    let errors: Vec<String> = settings_errors
        .iter()
        .chain(&config.maps.errors)
        .chain(&masquerade_errors)
        .map(ToString::to_string)
        .chain(directory_errors)
        .chain(remote_errors)
        .collect();
    for error in &errors {
        println!("{error}");
    }
    let warnings = warnings(&config);
    for warning in &warnings {
        println!("warning: {warning}");
    }
    let maps = &config.maps;
    println!(
        "{}: {} errors, {} warnings; {} domains, {} mailboxes, {} aliases",
        dir.display(),
        errors.len(),
        warnings.len(),
        maps.domains.iter().count(),
        maps.accounts.len(),
        maps.aliases.iter().count()
    );
    if errors.is_empty() { 0 } else { 1 }
}

fn warnings(config: &Config) -> Vec<String> {
    let mut warnings: Vec<String> = config
        .settings
        .submission_without_tls()
        .into_iter()
        .collect();
    let resolver = postern_routing::Resolver::of(config);
    let accounts_file = config.dir.join("accounts");
    let aliases_file = config.dir.join("aliases");

    let mut accounts: Vec<_> = config.maps.accounts.iter().collect();
    accounts.sort_by_key(|a| a.line);
    for account in accounts {
        let at = format!("{}:{}", accounts_file.display(), account.line);
        if resolver.domain_kind(account.address.domain()) != Some(DomainKind::Virtual) {
            warnings.push(format!(
                "{at}: {} is not a virtual domain, so no mail reaches {}",
                account.address.domain(),
                account.address
            ));
        }
        let maildir = resolver.maildir_of(account);
        if !maildir.join("new").is_dir() {
            warnings.push(format!(
                "{at}: Maildir {} does not exist yet",
                maildir.display()
            ));
        }
    }
    let mut aliases: Vec<_> = config.maps.aliases.iter().collect();
    aliases.sort_by_key(|a| a.line);
    for alias in aliases {
        let Some(sample) = sample_address(&alias.key, &config.settings.hostname) else {
            continue;
        };
        let resolution = resolver.resolve(&sample);
        for (target, error) in &resolution.failures {
            if *error != ResolveError::Unknown || target != &sample {
                let (code, text) = error.status();
                warnings.push(format!(
                    "{}:{}: {} reaches {target}: {code} {text}",
                    aliases_file.display(),
                    alias.line,
                    alias.key
                ));
            }
        }
    }
    // RFC 5321 section 4.5.1: postmaster must reach a person at every
    // domain; root's mail is never written as root, so an alias to root
    // without one of its own reaches no one.
    let mut domains: Vec<String> = config
        .maps
        .domains
        .iter()
        .map(|(d, _)| d.to_string())
        .collect();
    domains.push(config.settings.hostname.clone());
    domains.sort();
    domains.dedup();
    for domain in domains {
        let Ok(postmaster) = Address::new("postmaster", &domain) else {
            continue;
        };
        if !reaches_a_person(&resolver.resolve(&postmaster)) {
            warnings.push(format!(
                "{postmaster} does not reach a person: add a postmaster alias"
            ));
        }
    }
    if let Ok(root) = Address::new("root", &config.settings.hostname)
        && !reaches_a_person(&resolver.resolve(&root))
    {
        warnings.push(format!(
            "{root} has no alias to a person: its mail is deferred (4.3.0)"
        ));
    }
    warnings
}

/// An address the alias key applies to, to try its resolution: the key
/// itself, a made-up address for a catch-all, or the bare name at the
/// host's name.
fn sample_address(key: &str, hostname: &str) -> Option<Address> {
    if let Some(domain) = key.strip_prefix('@') {
        return Address::new("postern-check-catch-all", domain).ok();
    }
    if key.contains('@') {
        return Address::parse(key).ok();
    }
    Address::new(key, hostname).ok()
}

/// Every destination is a mailbox, a real user other than root, or remote.
fn reaches_a_person(resolution: &postern_routing::Resolution) -> bool {
    resolution.failures.is_empty()
        && !resolution.destinations.is_empty()
        && resolution.destinations.iter().all(|d| match d {
            Destination::SystemUser { name, .. } => {
                postern_privilege::lookup_user(name).is_some_and(|u| u.uid != 0)
            }
            _ => true,
        })
}
