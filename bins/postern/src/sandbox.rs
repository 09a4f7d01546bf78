//! The embedded default that `postern up` makes on first start: a whole
//! suite's configuration under one directory, a demo domain and mailbox, a
//! self-signed certificate, loopback ports. Run as root it also gives each
//! role its own numeric uid and gid (the first free from 5000 up, with no
//! passwd entry), so the privilege rules hold in the sandbox too.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub const DEMO_ADDRESS: &str = "demo@example.test";
pub const DEMO_DOMAIN: &str = "example.test";

/// The roles that get their own ids under a root sandbox: the users of
/// the services table.
fn roles() -> Vec<&'static str> {
    postern_config::services::users()
        .into_iter()
        .map(|user| user.role)
        .collect()
}

/// The loopback ports of the sandbox, by service, from the services
/// table.
pub fn standard_ports() -> Vec<(&'static str, u16)> {
    postern_config::services::ports()
        .into_iter()
        .map(|port| (port.service, port.sandbox))
        .collect()
}

pub struct Sandbox {
    pub dir: PathBuf,
    pub password: String,
    pub ids: Vec<(String, u32, u32)>,
    /// Each service's loopback port (`etc/ports`).
    pub ports: Vec<(String, u16)>,
    pub created: bool,
    /// Why it lives or runs elsewhere than asked, when it does.
    pub placement: Vec<String>,
}

impl Sandbox {
    pub fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }
}

/// Opens the sandbox in `dir`, creating it first if it has no config.
pub fn open_or_create(dir: &Path, port_offset: u16) -> anyhow::Result<Sandbox> {
    let asked = std::path::absolute(dir).with_context(|| format!("{}", dir.display()))?;
    let (dir, moved) = crate::placement::sandbox_dir(&asked)?;
    let etc = dir.join("etc");
    let created = !etc.join("postern.toml").exists();
    if created {
        create(&dir, port_offset)
            .with_context(|| format!("create the sandbox in {}", dir.display()))?;
    }
    let mut placement: Vec<String> = moved.into_iter().collect();
    placement.extend(crate::placement::programs(&dir)?);
    // demo.password is written last: without it, an earlier start stopped
    // half way.
    let password = match fs::read_to_string(etc.join("demo.password")) {
        Ok(text) => text.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} is incomplete (an earlier start was interrupted): remove it and start again",
            dir.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("read {}", etc.join("demo.password").display()));
        }
    };
    let ids = read_ids(&etc.join("ids"))?;
    let ports = read_ports(&etc.join("ports"));
    Ok(Sandbox {
        dir,
        password,
        ids,
        ports,
        created,
        placement,
    })
}

/// `etc/ports`: `SERVICE PORT` lines; a sandbox without it (made before it
/// existed) has the standard ports.
fn read_ports(path: &Path) -> Vec<(String, u16)> {
    let standard = || {
        standard_ports()
            .into_iter()
            .map(|(s, p)| (s.to_string(), p))
            .collect()
    };
    let Ok(text) = fs::read_to_string(path) else {
        return standard();
    };
    let ports: Vec<(String, u16)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (service, port) = l.split_once(' ')?;
            Some((service.to_string(), port.trim().parse().ok()?))
        })
        .collect();
    if ports.is_empty() { standard() } else { ports }
}

fn create(dir: &Path, port_offset: u16) -> anyhow::Result<()> {
    // SECURITY: root must not chmod or chown its way through someone
    // else's directory or symlink: DIR is made here, or is an empty
    // directory of our own, and everything below it is made here too.
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir(dir)?;
            // Role uids must reach the config and the mail under DIR.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
        }
        Ok(meta)
            if meta.is_dir()
                && meta.uid() == postern_privilege::current_ids().0
                && fs::read_dir(dir)?.next().is_none() => {}
        Ok(_) => bail!(
            "{} exists and is not an empty directory of yours: choose another --dir",
            dir.display()
        ),
        Err(e) => return Err(e.into()),
    }
    for sub in ["etc", "queue", "mail", "tls", "log", "var"] {
        fs::create_dir(dir.join(sub))?;
        fs::set_permissions(dir.join(sub), fs::Permissions::from_mode(0o755))?;
    }
    let etc = dir.join("etc");

    let ids = if postern_privilege::is_root() {
        allocate_ids()?
    } else {
        let (uid, gid) = postern_privilege::current_ids();
        roles()
            .iter()
            .map(|role| (role.to_string(), uid, gid))
            .collect()
    };
    let mut ids_text =
        String::from("# role uid gid: numeric ids chosen by postern up, without passwd entries\n");
    for (role, uid, gid) in &ids {
        ids_text.push_str(&format!("{role} {uid} {gid}\n"));
    }
    write_file(&etc.join("ids"), &ids_text, 0o644)?;
    let port = |service: &str| -> u16 {
        let standard = standard_ports()
            .into_iter()
            .find(|(s, _)| *s == service)
            .map_or(0, |(_, p)| p);
        standard.saturating_add(port_offset)
    };
    let mut ports_text = String::from("# service port: the sandbox's loopback ports\n");
    for (service, _) in standard_ports() {
        ports_text.push_str(&format!("{service} {}\n", port(service)));
    }
    write_file(&etc.join("ports"), &ports_text, 0o644)?;
    let (mail_uid, mail_gid) = ids
        .iter()
        .find(|(r, _, _)| r == "mail")
        .map(|(_, u, g)| (*u, *g))
        .expect("mail role");
    let role = |name: &str| {
        ids.iter()
            .find(|(r, _, _)| r == name)
            .map(|(_, u, g)| (*u, *g))
            .expect("every role has ids")
    };
    let (queue_uid, queue_gid) = role("postern");
    let (smtpd_uid, smtpd_gid) = role("postern-smtpd");
    let (auth_uid, auth_gid) = role("postern-auth");
    let (_, relay_gid) = role("postern-relay");
    let (login_uid, login_gid) = role("postern-login");
    let (proxy_uid, proxy_gid) = role("postern-proxy");
    let (remote_uid, remote_gid) = role("postern-remote");
    // The relayers file's directory: root's, writable by the relay group
    // (postern-auth keeps it), set-group-id so each new file is the group's.
    let relay_dir = dir.join("var").join("relay");
    fs::create_dir(&relay_dir)?;
    if postern_privilege::is_root() {
        std::os::unix::fs::chown(&relay_dir, Some(0), Some(relay_gid))?;
    }
    fs::set_permissions(&relay_dir, fs::Permissions::from_mode(0o2775))?;
    // postern-remote's own directory (its MTA-STS policy cache).
    let remote_dir = dir.join("var").join("remote");
    fs::create_dir(&remote_dir)?;
    if postern_privilege::is_root() {
        std::os::unix::fs::chown(&remote_dir, Some(remote_uid), Some(remote_gid))?;
    }
    fs::set_permissions(&remote_dir, fs::Permissions::from_mode(0o700))?;

    let quoted = |path: PathBuf| toml::Value::String(path.display().to_string()).to_string();
    let settings = format!(
        "# Postern sandbox, made by `postern up`. Every key of etc/postern.toml in\n\
         # the source tree may be set here; these differ from the defaults.\n\
         hostname = \"localhost\"\n\
         mail_root = {}\n\
         queue_dir = {}\n\
         mail_owner = \"{mail_uid}:{mail_gid}\"\n\
         queue_user = \"{queue_uid}:{queue_gid}\"\n\
         log = \"stderr\"\n\
         smtpd.listen = [\"127.0.0.1:{}\", \"127.0.0.1:{} submission\", \"127.0.0.1:{} smtps\"]\n\
         smtpd.user = \"{smtpd_uid}:{smtpd_gid}\"\n\
         smtpd.relayers_file = {}\n\
         auth.socket = {}\n\
         auth.user = \"{auth_uid}:{auth_gid}\"\n\
         auth.groups = [\"{relay_gid}\", \"shadow\"]\n\
         auth.login_clients = [\"{smtpd_uid}\", \"{login_uid}\"]\n\
         pop3d.listen = [\"127.0.0.1:{}\", \"127.0.0.1:{} pop3s\"]\n\
         pop3d.login_user = \"{login_uid}:{login_gid}\"\n\
         pop3d.proxy_user = \"{proxy_uid}:{proxy_gid}\"\n\
         imapd.listen = [\"127.0.0.1:{}\", \"127.0.0.1:{} imaps\"]\n\
         imapd.login_user = \"{login_uid}:{login_gid}\"\n\
         remote.user = \"{remote_uid}:{remote_gid}\"\n\
         remote.state_dir = {}\n\
         pop3d.proxy_ca_file = {}\n\
         tls.certificate = {}\n\
         tls.key = {}\n",
        quoted(dir.join("mail")),
        quoted(dir.join("queue")),
        port("SMTP"),
        port("submission"),
        port("SMTPS"),
        quoted(relay_dir.join("relayers")),
        quoted(dir.join("var").join("auth.sock")),
        port("POP3"),
        port("POP3S"),
        port("IMAP"),
        port("IMAPS"),
        quoted(remote_dir.clone()),
        // Its own certificate: a proxy to the sandbox itself can check it.
        quoted(dir.join("tls").join("cert.pem")),
        quoted(dir.join("tls").join("cert.pem")),
        quoted(dir.join("tls").join("key.pem")),
    );
    write_file(
        &etc.join("domains"),
        &format!("# domain kind (local or virtual)\n{DEMO_DOMAIN} virtual\n"),
        0o644,
    )?;
    write_file(
        &etc.join("aliases"),
        &format!(
            "# root, postmaster and abuse must reach a person.\n\
             root: {DEMO_ADDRESS}\npostmaster: {DEMO_ADDRESS}\nabuse: {DEMO_ADDRESS}\n"
        ),
        0o644,
    )?;
    let password_file = etc.join("demo.password.new");
    write_file(
        &password_file,
        &format!("{}\n", generate_password()?),
        0o600,
    )?;
    write_certificate(&dir.join("tls"))?;
    if postern_privilege::is_root() {
        // The SMTP listener reads the key again, as itself, when the files
        // change: its group may read it, nobody else.
        std::os::unix::fs::chown(dir.join("tls/key.pem"), Some(0), Some(smtpd_gid))?;
        fs::set_permissions(dir.join("tls/key.pem"), fs::Permissions::from_mode(0o640))?;
    }

    write_file(&etc.join("postern.toml"), &settings, 0o644)?;
    std::os::unix::fs::chown(dir.join("mail"), Some(mail_uid), Some(mail_gid))?;
    fs::set_permissions(dir.join("mail"), fs::Permissions::from_mode(0o750))?;
    let queue = postern_queue_format::QueueDir::create(dir.join("queue"))?;
    for part in ["", "tmp", "queue", "state", "trigger"] {
        std::os::unix::fs::chown(queue.root().join(part), Some(queue_uid), Some(queue_gid))?;
    }
    for (part, mode) in postern_queue_format::SUBDIRECTORIES {
        fs::set_permissions(queue.root().join(part), fs::Permissions::from_mode(mode))?;
    }
    fs::set_permissions(dir.join("queue"), fs::Permissions::from_mode(0o750))?;

    let admin = sibling_program("postern-admin")?;
    let output = Command::new(&admin)
        .arg("--config")
        .arg(&etc)
        .args(["mailbox", "add", DEMO_ADDRESS, "--password-file"])
        .arg(&password_file)
        .output()
        .with_context(|| format!("run {}", admin.display()))?;
    if !output.status.success() {
        bail!(
            "postern-admin mailbox add failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    fs::rename(&password_file, etc.join("demo.password"))?;
    if postern_privilege::is_root() {
        // postern-auth reads the accounts file (and nothing else of the
        // suite may): its group, read-only. Edits keep owner and mode.
        let accounts = etc.join("accounts");
        std::os::unix::fs::chown(&accounts, Some(0), Some(auth_gid))?;
        fs::set_permissions(&accounts, fs::Permissions::from_mode(0o640))?;
    }
    Ok(())
}

/// A program installed beside this one.
pub fn sibling_program(name: &str) -> anyhow::Result<PathBuf> {
    let dir = match crate::placement::program_dir() {
        Some(dir) => dir,
        None => {
            let exe = std::env::current_exe().context("locate postern")?;
            exe.parent()
                .context("postern has no directory")?
                .to_path_buf()
        }
    };
    let path = dir.join(name);
    anyhow::ensure!(path.exists(), "{} is missing", path.display());
    Ok(path)
}

/// The first ids from 5000 up that no user or group has, one per role.
fn allocate_ids() -> anyhow::Result<Vec<(String, u32, u32)>> {
    let mut ids = Vec::new();
    let mut candidate = 5000u32;
    for role in roles() {
        while postern_privilege::lookup_uid(candidate).is_some() || group_exists(candidate) {
            candidate += 1;
            anyhow::ensure!(candidate < 60000, "no free uid between 5000 and 60000");
        }
        ids.push((role.to_string(), candidate, candidate));
        candidate += 1;
    }
    Ok(ids)
}

fn group_exists(gid: u32) -> bool {
    matches!(
        nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)),
        Ok(Some(_))
    )
}

fn read_ids(path: &Path) -> anyhow::Result<Vec<(String, u32, u32)>> {
    let text = fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut ids = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let parsed = match fields[..] {
            [role, uid, gid] => uid
                .parse()
                .ok()
                .zip(gid.parse().ok())
                .map(|(u, g)| (role.to_string(), u, g)),
            _ => None,
        };
        ids.push(parsed.with_context(|| {
            format!("{}:{}: expected `role uid gid`", path.display(), number + 1)
        })?);
    }
    // A role added since the sandbox was made gets its ids now.
    let mut added = String::new();
    for role in roles() {
        if ids.iter().any(|(r, _, _)| r == role) {
            continue;
        }
        let (uid, gid) = if postern_privilege::is_root() {
            let mut candidate = 5000u32;
            while postern_privilege::lookup_uid(candidate).is_some()
                || group_exists(candidate)
                || ids
                    .iter()
                    .any(|(_, u, g)| *u == candidate || *g == candidate)
            {
                candidate += 1;
                anyhow::ensure!(candidate < 60000, "no free uid between 5000 and 60000");
            }
            (candidate, candidate)
        } else {
            postern_privilege::current_ids()
        };
        added.push_str(&format!("{role} {uid} {gid}\n"));
        ids.push((role.to_string(), uid, gid));
    }
    if !added.is_empty() {
        fs::write(path, text + &added).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(ids)
}

fn generate_password() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("random password: {e}"))?;
    // 256 % 56 != 0 biases a few letters slightly; at 16 characters the
    // password still has over 90 bits, plenty for a sandbox.
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

fn write_certificate(tls: &Path) -> anyhow::Result<()> {
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let certified =
        rcgen::generate_simple_self_signed(names).context("make the self-signed certificate")?;
    write_file(&tls.join("cert.pem"), &certified.cert.pem(), 0o644)?;
    write_file(
        &tls.join("key.pem"),
        &certified.signing_key.serialize_pem(),
        0o600,
    )?;
    Ok(())
}

fn write_file(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}
