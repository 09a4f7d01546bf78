//! `dkim keygen DOMAIN [--selector S] [--algorithm rsa|ed25519] [--bits N]`:
//! a DKIM key for a sender domain, written where postern-remote reads it
//! (`dkim/DOMAIN/SELECTOR.pem` in the configuration directory, the
//! `[remote] user`'s alone), and the DNS TXT record to publish for it.
//!
//! The key is made by `openssl genpkey`: ring, which signs, makes no RSA
//! keys, and the RustCrypto `rsa` crate that does carries an unfixed
//! timing advisory (RUSTSEC-2023-0071); OpenSSL is on every Debian host
//! (ca-certificates needs it).

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use base64::Engine;
use postern_config::Settings;

/// `keygen`'s options.
pub struct Keygen<'a> {
    pub domain: &'a str,
    pub selector: &'a str,
    pub algorithm: &'a str,
    pub bits: u32,
}

/// The DER of an Ed25519 SubjectPublicKeyInfo ends with the 32-byte key.
const ED25519_KEY: usize = 32;

pub fn keygen(dir: &Path, options: &Keygen<'_>) -> anyhow::Result<String> {
    let domain = options.domain.trim_end_matches('.').to_ascii_lowercase();
    let selector = options.selector;
    let label = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    if !label(&domain) || !domain.contains('.') {
        bail!("{domain:?} is not a domain name");
    }
    if !label(selector) {
        bail!("{selector:?} is not a selector (letters, digits, - and .)");
    }
    let (algorithm, k) = match options.algorithm {
        "rsa" => ("RSA", "rsa"),
        "ed25519" => ("ED25519", "ed25519"),
        other => bail!("{other:?} is not an algorithm: rsa or ed25519"),
    };
    if k == "rsa" && !(1024..=4096).contains(&options.bits) {
        bail!(
            "{} bits: RSA keys for DKIM are 1024 to 4096 bits (2048 is usual)",
            options.bits
        );
    }
    let settings = Settings::load(dir)?;
    // Root makes the files the `[remote] user`'s; anyone else, their own.
    let owner = settings
        .remote
        .user
        .resolve()
        .map(|(uid, gid, _)| (uid, gid))
        .filter(|_| postern_privilege::is_root());
    let keys = dir.join("dkim");
    let domain_dir = keys.join(&domain);
    for d in [&keys, &domain_dir] {
        if !d.exists() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(d)
                .with_context(|| format!("create {}", d.display()))?;
        }
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(d, Some(uid), Some(gid))
                .with_context(|| format!("chown {}", d.display()))?;
        }
    }
    let path = domain_dir.join(format!("{selector}.pem"));
    if path.exists() {
        bail!(
            "{} exists: a key in use is never overwritten (remove it once its record is gone from DNS)",
            path.display()
        );
    }
    let mut genpkey = Command::new("openssl");
    genpkey.args(["genpkey", "-algorithm", algorithm]);
    if k == "rsa" {
        genpkey.args(["-pkeyopt", &format!("rsa_keygen_bits:{}", options.bits)]);
    }
    let private = run(&mut genpkey, None).context("openssl genpkey (is openssl installed?)")?;
    let public = run(
        Command::new("openssl").args(["pkey", "-pubout", "-outform", "DER"]),
        Some(&private),
    )
    .context("openssl pkey")?;
    let public = match k {
        "ed25519" => public[public.len().saturating_sub(ED25519_KEY)..].to_vec(),
        _ => public,
    };
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("create {}", path.display()))?;
        file.write_all(&private)?;
        file.sync_all()?;
    }
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))
            .with_context(|| format!("chown {}", path.display()))?;
    }
    let p = base64::engine::general_purpose::STANDARD.encode(&public);
    let value = format!("v=DKIM1; k={k}; p={p}");
    // A TXT string holds at most 255 octets; the record is their join.
    let strings: Vec<String> = value
        .as_bytes()
        .chunks(250)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect();
    Ok(format!(
        "wrote {}\npublish in DNS:\n{selector}._domainkey.{domain}. IN TXT ( {} )",
        path.display(),
        strings.join(" ")
    ))
}

fn run(command: &mut Command, input: Option<&[u8]>) -> anyhow::Result<Vec<u8>> {
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write;
        stdin.write_all(bytes)?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}
