//! `explain ADDR`: how an address resolves, step by step, with the
//! `file:line` of every rule used — the answer to "where did my mail go".

use std::path::Path;

use postern_config::{Address, Config};
use postern_routing::Destination;
use postern_routing::forward::{Forward, ForwardTarget, read_safe};

/// `explain --relay IP ADDR`: what postern-smtpd answers a client at IP
/// for `RCPT TO:<ADDR>`, and by which rule; then, for a local address, how
/// it resolves.
pub fn relay(dir: &Path, ip: std::net::IpAddr, text: &str) -> anyhow::Result<String> {
    let config = Config::load(dir)?;
    let smtpd = &config.settings.smtpd;
    let verdict = |line: String| Ok(format!("client {ip} → <{text}>: {line}"));
    if let Some(what) = postern_routing::relay::trick(text) {
        return verdict(format!("refused (550 5.7.1): {what} is not accepted here"));
    }
    let address = match Address::parse(text) {
        Ok(address) => address,
        Err(e) => return verdict(format!("refused (501 5.1.3): {e}")),
    };
    let resolution = postern_routing::Resolver::of(&config).resolve(&address);
    let remote = matches!(
        resolution.destinations.as_slice(),
        [Destination::Remote(r)] if *r == address
    );
    if !remote {
        let local = run(dir, text)?;
        let answer = if resolution.destinations.is_empty() {
            "refused at RCPT unless deferred: no such local address"
        } else {
            "taken from anyone: a local address"
        };
        return Ok(format!("client {ip} → <{text}>: {answer}\n{local}"));
    }
    let trusted = smtpd.trusted_networks.clone();
    let rules = postern_routing::relay::RelayRules {
        trusted,
        relayers_file: smtpd.relayers_file.clone(),
        window: smtpd.relay_window,
        refusal: smtpd.relay_refusal.clone(),
    };
    match rules.permits(ip, postern_config::unix_now()) {
        Some(rule) => verdict(format!("relayed: {rule}")),
        None => verdict(format!(
            "refused (550 5.7.1): not a domain of this host, and {ip} is in no trusted network ({}) and has no login in {} within the last {}",
            smtpd
                .trusted_networks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            smtpd.relayers_file.display(),
            postern_config::span(smtpd.relay_window)
        )),
    }
}

pub fn run(dir: &Path, address: &str) -> anyhow::Result<String> {
    let config = Config::load(dir)?;
    // A bare name is that user at this host, as sendmail reads `root`.
    let address = match address.contains('@') {
        true => address.to_string(),
        false => format!("{address}@{}", config.settings.hostname),
    };
    let address = Address::parse(&address).map_err(|e| anyhow::anyhow!("{address:?}: {e}"))?;
    let resolution = postern_routing::Resolver::of(&config).resolve(&address);
    let mut out = vec![address.to_string()];
    for step in &resolution.trail {
        let indent = "  ".repeat(step.level);
        // Rules name their map; the full path makes them findable.
        let text = match step.text.split_once(':') {
            Some((file, rest)) if ["aliases", "accounts", "domains"].contains(&file) => {
                format!("{}:{rest}", dir.join(file).display())
            }
            _ => step.text.clone(),
        };
        out.push(format!("{indent}{text}"));
        if let Some(name) = &step.system_user {
            for line in system_user(name, &config.settings.hostname) {
                out.push(format!("{indent}  {line}"));
            }
        }
    }
    // What the address's own mail goes out as, when its user submits it.
    let (masquerade, _) = postern_config::Masquerade::load(dir)?;
    // A login name's rule is for the user's own address at the host's name.
    let user = if address.domain() == config.settings.hostname {
        address.local()
    } else {
        ""
    };
    if let Some((new, line)) = masquerade.lookup(user, &address) {
        out.push(format!(
            "mail {address} submits goes out as {new} ({}:{line})",
            dir.join(postern_config::masquerade::MASQUERADE_FILE)
                .display()
        ));
    }
    Ok(out.join("\n"))
}

/// What happens at a system user: their `.forward`, or their Maildir.
fn system_user(name: &str, hostname: &str) -> Vec<String> {
    let Some(user) = postern_privilege::lookup_user(name) else {
        return vec!["no such user: 5.1.1 user unknown".to_string()];
    };
    if user.uid == 0 {
        return vec![format!(
            "{name} is uid 0: deferred (4.3.0) until an alias sends root's mail to a person"
        )];
    }
    let maildir = format!("{}/", user.home.join("Maildir").display());
    let path = user.home.join(".forward");
    if std::fs::symlink_metadata(&path).is_err() {
        return vec![format!("uid {}, no .forward → {maildir}", user.uid)];
    }
    let text = match read_safe(&path, Some(user.uid)) {
        Ok((_, text)) if readable_by(&path, user.uid, user.gid) => text,
        Ok(_) => {
            let why = format!("{} is not readable by {name}", path.display());
            return vec![format!(
                "uid {}, .forward ignored: {why} → {maildir}",
                user.uid
            )];
        }
        Err(why) => {
            return vec![format!(
                "uid {}, .forward ignored: {why} → {maildir}",
                user.uid
            )];
        }
    };
    let forward = Forward::parse(&text, hostname);
    let mut lines = vec![format!("uid {}, follows {}", user.uid, path.display())];
    for (line, why) in &forward.errors {
        lines.push(format!("  {}:{line}: skipped: {why}", path.display()));
    }
    for (line, target) in &forward.targets {
        let what = match target {
            ForwardTarget::KeepLocal(local) if *local == user.name => {
                format!("\\{local}: kept in {maildir}")
            }
            ForwardTarget::KeepLocal(other) => {
                format!("\\{other}: user {other}, through the queue")
            }
            ForwardTarget::Address(address) => {
                format!("{address}: through the queue")
            }
            ForwardTarget::File(file) => format!("{}: appended as mbox, as {name}", file.display()),
            ForwardTarget::Maildir(dir) => format!("{}: Maildir, as {name}", dir.display()),
            ForwardTarget::Pipe(command) => format!("|{command}: run by /bin/sh as {name}"),
        };
        lines.push(format!("  {}:{line}: {what}", path.display()));
    }
    if forward.targets.is_empty() {
        lines.push(format!("  no usable line → {maildir}"));
    }
    lines
}

/// Whether the user's own delivery process (which reads the file as the
/// user, not as root like this tool) can read it.
fn readable_by(path: &std::path::Path, uid: u32, gid: u32) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| postern_privilege::may_access(&meta, uid, &[gid], 0o4))
}
