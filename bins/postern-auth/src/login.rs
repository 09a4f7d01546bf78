//! Credential checks (docs/AUTH.md): whose password, whether the stored
//! scheme can answer the client's mechanism, the check itself, the
//! failure throttle, and — for a POP3 or IMAP login — the relayers entry
//! that lets the client's IP relay for a while (POP-before-SMTP).

use std::net::IpAddr;
use std::sync::Mutex;

use postern_auth_protocol::{Login, Mailbox, Proof, Reply, Service};
use postern_config::{Address, Config};
use postern_password::{Mechanism, StoredPassword};
use tracing::{info, warn};

use crate::throttle::Throttle;

/// The failure counts, shared by every connection.
pub static THROTTLE: Mutex<Option<Throttle>> = Mutex::new(None);

pub struct Attempt<'a> {
    pub service: Service,
    pub ip: IpAddr,
    pub user: &'a str,
    pub proof: &'a Proof,
}

/// The answer to a login attempt, and how long to wait before giving it
/// (the throttle's delay).
pub fn login(config: &Config, attempt: &Attempt, now: u64) -> (Reply, u64) {
    let Attempt {
        service, ip, user, ..
    } = *attempt;
    let method = method(attempt.proof);
    let key = account_name(user);
    let verdict = throttle(config, |t| t.begin(ip, &key, now));
    if verdict.refuse {
        // Not checked, so not a failed password: logged as the throttle's
        // refusal, which fail2ban's filters do not count again.
        warn!(
            "{} login throttled: user=<{}>, ip={ip}, method={method}, reason=too many failures from this IP (postern-admin auth unblock)",
            service.name(),
            postern_log::escape(user)
        );
        let status = "4.7.0 too many failed logins from your address; try again later".into();
        return (Reply::Fail { status }, verdict.delay);
    }
    match check(config, service, user, attempt.proof) {
        Ok(login) => {
            throttle(config, |t| t.succeeded(ip, &key));
            info!(
                "{} login: user=<{}>, ip={ip}, method={method}",
                service.name(),
                postern_log::escape(&login.user)
            );
            // A proxy's address is not its users': it may not relay for
            // their logins.
            if matches!(service, Service::Pop3 | Service::Imap)
                && !throttle(config, |t| t.is_proxy(ip))
            {
                record(config, ip, now);
            }
            (Reply::Ok(login), verdict.delay)
        }
        Err(reason) => {
            warn!(
                "{} login failed: user=<{}>, ip={ip}, method={method}, reason={reason}",
                service.name(),
                postern_log::escape(user)
            );
            let status = "5.7.8 authentication failed".into();
            (Reply::Fail { status }, verdict.delay)
        }
    }
}

fn throttle<T>(config: &Config, act: impl FnOnce(&mut Throttle) -> T) -> T {
    let mut throttle = THROTTLE.lock().unwrap_or_else(|e| e.into_inner());
    act(throttle.get_or_insert_with(|| Throttle::new(&config.settings.auth)))
}

/// `BLOCKED`: what the throttle delays or refuses now (nothing before the
/// first login made it).
pub fn blocked(now: u64) -> Reply {
    let mut throttle = THROTTLE.lock().unwrap_or_else(|e| e.into_inner());
    Reply::Blocked(
        throttle
            .as_mut()
            .map(|t| t.blocked(now))
            .unwrap_or_default(),
    )
}

/// `UNBLOCK`: forget an address's or an account's failures.
pub fn unblock(key: &str) -> Reply {
    let key = match key.parse::<IpAddr>() {
        Ok(_) => key.to_string(),
        Err(_) => account_name(key),
    };
    let mut throttle = THROTTLE.lock().unwrap_or_else(|e| e.into_inner());
    Reply::Unblocked(throttle.as_mut().map_or(0, |t| t.unblock(&key)))
}

/// The name failures are counted by: the account's own, however the
/// client (or the admin unblocking it) wrote it.
fn account_name(user: &str) -> String {
    Address::parse(user).map_or_else(|_| user.to_lowercase(), |a| a.to_string())
}

fn method(proof: &Proof) -> &'static str {
    match proof {
        Proof::Password(_) => "password",
        Proof::CramMd5 { .. } => "CRAM-MD5",
        Proof::Apop { .. } => "APOP",
    }
}

/// The account and its mailbox if the proof is good; else why not, for
/// the log (never for the client, who learns only that it failed).
fn check(
    config: &Config,
    service: Service,
    user: &str,
    proof: &Proof,
) -> Result<Login, &'static str> {
    let (login, stored) = match account(config, user) {
        Ok(found) => found,
        Err(why) => {
            // As long as checking a real account's hash takes: how fast a
            // login fails must not tell whether the user exists.
            if let Proof::Password(password) = proof {
                let _ = unknown_user_hash().verify(password);
            }
            return Err(why);
        }
    };
    let mechanism = match proof {
        Proof::Password(_) => Mechanism::Cleartext,
        Proof::CramMd5 { .. } => Mechanism::CramMd5,
        Proof::Apop { .. } => Mechanism::Apop,
    };
    if !stored.supports(mechanism) {
        return Err("the stored password's scheme cannot check this mechanism");
    }
    // RFC 1939 §13: an account set to APOP never sends its password.
    if service == Service::Pop3 && mechanism != Mechanism::Apop && apop_only(config, user) {
        return Err("the account logs in to POP3 by APOP only");
    }
    let good = match proof {
        Proof::Password(password) => stored.verify(password),
        Proof::CramMd5 { challenge, digest } => {
            stored.verify_cram_md5(challenge.as_bytes(), digest)
        }
        Proof::Apop { timestamp, digest } => stored.verify_apop(timestamp.as_bytes(), digest),
    };
    if good {
        Ok(login)
    } else {
        Err("wrong password")
    }
}

fn apop_only(config: &Config, user: &str) -> bool {
    Address::parse(user)
        .ok()
        .and_then(|address| config.maps.accounts.get(&address).map(|a| a.pop3_apop_only))
        .unwrap_or(false)
}

/// A hash in the scheme Postern writes, of a password nobody knows.
fn unknown_user_hash() -> &'static StoredPassword {
    static HASH: std::sync::OnceLock<StoredPassword> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let mut random = [0u8; 24];
        let _ = getrandom::fill(&mut random);
        let hash = postern_password::hash_sha512_crypt(&random).unwrap_or_default();
        StoredPassword::parse(&hash)
    })
}

/// Whose a login name is, with the stored password: `user@domain` an
/// account of the accounts file, a bare `user` a system user (from
/// `min_system_uid` up) with `~/<home_maildir>`.
fn account(config: &Config, user: &str) -> Result<(Login, StoredPassword), &'static str> {
    if user.contains('@') {
        let address = Address::parse(user).map_err(|_| "not an address")?;
        let account = config
            .maps
            .accounts
            .get(&address)
            .ok_or("no such account")?;
        let mailbox = account
            .owner(&config.settings.mail_owner)
            .map(|(uid, gid, _)| Mailbox {
                uid,
                gid,
                maildir: postern_routing::Resolver::of(config).maildir_of(account),
                all_folders: account.pop3_scope == postern_config::Pop3Scope::AllFolders,
                strip_message_id: account.pop3_strip_message_id,
            });
        let login = Login {
            user: address.to_string(),
            mailbox,
        };
        return Ok((login, account.password.clone()));
    }
    let system = postern_privilege::lookup_user(user).ok_or("no such user")?;
    if system.uid < config.settings.auth.min_system_uid {
        return Err("a system account below min_system_uid");
    }
    let hash = postern_privilege::shadow_password(&system.name)?;
    let login = Login {
        mailbox: Some(Mailbox {
            uid: system.uid,
            gid: system.gid,
            maildir: system.home.join(&config.settings.home_maildir),
            all_folders: false,
            strip_message_id: false,
        }),
        user: system.name,
    };
    Ok((login, StoredPassword::parse(&hash)))
}

/// POP-before-SMTP: the IP may relay for the window from now.
fn record(config: &Config, ip: IpAddr, now: u64) {
    let file = &config.settings.smtpd.relayers_file;
    let result = postern_config::relayers::update(file, |entries| {
        postern_config::relayers::set(entries, ip, now)
    });
    if let Err(e) = result {
        warn!("cannot record the login of {ip} for relaying: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(dir: &Path) -> Config {
        let hashed = postern_password::hash_sha512_crypt(b"secret").unwrap();
        std::fs::write(
            dir.join("postern.toml"),
            format!(
                "hostname = \"mx.example.test\"\nmail_root = \"/nonexistent\"\n\
                 smtpd.relayers_file = \"{}\"\n",
                dir.join("relayers").display()
            ),
        )
        .unwrap();
        std::fs::write(dir.join("domains"), "example.test virtual\n").unwrap();
        std::fs::write(
            dir.join("accounts"),
            format!(
                "plain@example.test:{{PLAIN}}tanstaaf::::::\nhashed@example.test:{hashed}::::::\n\
                 throttled@example.test:{{PLAIN}}tanstaaf::::::\n"
            ),
        )
        .unwrap();
        Config::load(dir).unwrap()
    }

    fn attempt<'a>(service: Service, ip: &str, user: &'a str, proof: &'a Proof) -> Attempt<'a> {
        Attempt {
            service,
            ip: ip.parse().unwrap(),
            user,
            proof,
        }
    }

    fn password(text: &str) -> Proof {
        Proof::Password(text.as_bytes().to_vec())
    }

    #[test]
    fn each_mechanism_where_the_stored_scheme_allows_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let try_login = |user: &str, proof: &Proof| {
            login(
                &config,
                &attempt(Service::Smtp, "198.51.100.1", user, proof),
                1000,
            )
            .0
        };
        let ok = |user: &str| {
            let address = Address::parse(user).unwrap();
            let account = config.maps.accounts.get(&address).unwrap();
            Reply::Ok(Login {
                user: user.to_string(),
                mailbox: account
                    .owner(&config.settings.mail_owner)
                    .map(|(uid, gid, _)| Mailbox {
                        uid,
                        gid,
                        maildir: postern_routing::Resolver::of(&config).maildir_of(account),
                        all_folders: false,
                        strip_message_id: false,
                    }),
            })
        };
        assert_eq!(
            try_login("plain@example.test", &password("tanstaaf")),
            ok("plain@example.test")
        );
        assert_eq!(
            try_login("Hashed@Example.Test", &password("secret")),
            ok("hashed@example.test")
        );
        let apop = Proof::Apop {
            timestamp: "<1896.697170952@dbc.mtview.ca.us>".into(),
            digest: "c4c9334bac560ecc979e58001b3e22fb".into(),
        };
        assert_eq!(
            try_login("plain@example.test", &apop),
            ok("plain@example.test")
        );
        // A one-way hash cannot answer APOP or CRAM-MD5.
        assert!(matches!(
            try_login("hashed@example.test", &apop),
            Reply::Fail { .. }
        ));
        let cram = Proof::CramMd5 {
            challenge: "<1.2@mx.example.test>".into(),
            digest: hex_hmac(b"secret", b"<1.2@mx.example.test>"),
        };
        assert!(matches!(
            try_login("hashed@example.test", &cram),
            Reply::Fail { .. }
        ));
        let cram = Proof::CramMd5 {
            challenge: "<1.2@mx.example.test>".into(),
            digest: hex_hmac(b"tanstaaf", b"<1.2@mx.example.test>"),
        };
        assert_eq!(
            try_login("plain@example.test", &cram),
            ok("plain@example.test")
        );
        for (user, proof) in [
            ("plain@example.test", password("wrong")),
            ("nobody@example.test", password("tanstaaf")),
            ("root", password("x")),
            ("not an address@", password("x")),
        ] {
            assert!(
                matches!(try_login(user, &proof), Reply::Fail { status } if status.starts_with("5.7.8")),
                "{user}"
            );
        }
    }

    fn hex_hmac(key: &[u8], message: &[u8]) -> String {
        postern_password::CramMd5Context::from_password(key)
            .hmac(message)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn pop3_and_imap_logins_are_recorded_for_relaying_smtp_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let good = password("tanstaaf");
        let user = "plain@example.test";
        login(
            &config,
            &attempt(Service::Smtp, "198.51.100.20", user, &good),
            5000,
        );
        assert!(!dir.path().join("relayers").exists());
        login(
            &config,
            &attempt(Service::Pop3, "198.51.100.21", user, &good),
            5000,
        );
        login(
            &config,
            &attempt(Service::Imap, "2001:db8::21", user, &good),
            5001,
        );
        let bad = password("wrong");
        login(
            &config,
            &attempt(Service::Pop3, "198.51.100.22", user, &bad),
            5002,
        );
        let text = std::fs::read_to_string(dir.path().join("relayers")).unwrap();
        assert_eq!(
            postern_config::relayers::parse(&text),
            [
                ("198.51.100.21".parse().unwrap(), 5000),
                ("2001:db8::21".parse().unwrap(), 5001)
            ]
        );
    }

    #[test]
    fn failures_are_delayed_then_the_ip_is_refused_but_not_others() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let (bad, good) = (password("wrong"), password("tanstaaf"));
        // Its own account: the counts are shared by every test.
        let user = "throttled@example.test";
        let from = |ip| attempt(Service::Smtp, ip, user, &bad);
        let delays: Vec<u64> = (0..10)
            .map(|_| match login(&config, &from("203.0.113.66"), 9000) {
                (Reply::Fail { .. }, delay) => delay,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(delays, [0, 0, 0, 2, 2, 2, 2, 2, 2, 2]);
        // The right password from that IP is refused now, unchecked...
        let good_from = |ip| attempt(Service::Smtp, ip, user, &good);
        let refused = login(&config, &good_from("203.0.113.66"), 9000);
        assert!(matches!(refused, (Reply::Fail { status }, 2) if status.starts_with("4.7.0")));
        // ...and from another IP it works, as slowly as a failure would
        // be answered (the account's count): timing tells nothing.
        let other = login(&config, &good_from("203.0.113.67"), 9000);
        assert!(matches!(other, (Reply::Ok(login), 2) if login.user == user));
    }
}
