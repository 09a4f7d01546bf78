//! `make install` and `make uninstall`: the installed tree works, the man
//! pages render, the units verify, a changed config survives, and nothing
//! else is left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `make TARGET ARGS` in the source tree, with what `make test` built.
fn make(args: &[&str]) -> Output {
    let out = Command::new("make")
        .arg("-C")
        .arg(root())
        .arg("--no-print-directory")
        .args(args)
        .args(["PROFILE=debug", "NOBUILD=1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn group_id(name: &str) -> Option<u32> {
    let out = Command::new("getent").args(["group", name]).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split(':')
        .nth(2)?
        .trim()
        .parse()
        .ok()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn install_gives_a_working_tree_and_uninstall_takes_it_back() {
    // What it installs depends on which groups exist: none may be made
    // while it runs (install_users_is_idempotent makes them).
    let _accounts = crate::system_users::ACCOUNTS
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let dest = tempfile::tempdir().unwrap();
    let destdir = format!("DESTDIR={}", dest.path().display());
    make(&["install", &destdir]);
    let d = dest.path();
    for program in [
        "postern",
        "postern-admin",
        "postern-inject",
        "postern-local",
        "postern-auth",
    ] {
        let meta = std::fs::metadata(d.join("usr/local/sbin").join(program)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o755
        );
    }
    for link in ["sendmail", "mailq"] {
        assert_eq!(
            std::fs::read_link(d.join("usr/local/sbin").join(link)).unwrap(),
            Path::new("postern-inject")
        );
    }
    let etc = d.join("etc/postern");
    for sample in [
        "postern.toml",
        "domains",
        "aliases",
        "accounts",
        "masquerade",
    ] {
        assert!(etc.join(sample).is_file(), "{sample}");
        assert!(
            d.join("usr/local/share/postern")
                .join(format!("{sample}.sample"))
                .is_file()
        );
    }
    // The relayers file's tool and directory: the postern-relay group's
    // (when it exists, as root), since an IP added there may relay.
    let relay_dir = d.join("var/lib/postern/relay");
    let tool = d.join("usr/local/sbin/postern-relay");
    if crate::util::is_root() && group_id("postern-relay").is_some() {
        use std::os::unix::fs::MetadataExt;
        let gid = group_id("postern-relay");
        let dir = std::fs::metadata(&relay_dir).unwrap();
        assert_eq!((dir.mode() & 0o7777, Some(dir.gid())), (0o2775, gid));
        let tool = std::fs::metadata(&tool).unwrap();
        assert_eq!((tool.mode() & 0o7777, Some(tool.gid())), (0o750, gid));
    } else {
        assert!(relay_dir.is_dir() && tool.is_file());
    }
    let cron =
        std::fs::read_to_string(d.join("usr/local/share/postern/cron.d-postern-relay")).unwrap();
    assert!(
        cron.contains("root\t/usr/local/sbin/postern-relay expire"),
        "{cron}"
    );
    let timer = d.join("usr/local/lib/systemd/system/postern-relay-expire.timer");
    assert!(
        std::fs::read_to_string(timer)
            .unwrap()
            .contains("OnCalendar=")
    );
    let unit =
        std::fs::read_to_string(d.join("usr/local/lib/systemd/system/postern.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/sbin/postern --config /etc/postern up"),
        "{unit}"
    );

    // The installed programs accept the installed configuration, with its
    // directories where DESTDIR put them: made with their owners where
    // the users exist, and named as missing users where they do not.
    let moved = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&etc).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), moved.path().join(entry.file_name())).unwrap();
    }
    let toml = std::fs::read_to_string(etc.join("postern.toml"))
        .unwrap()
        .replace("\"/var/", &format!("\"{}/var/", d.display()));
    std::fs::write(moved.path().join("postern.toml"), toml).unwrap();
    let users = ["postern", "postern-mail", "postern-auth"].iter().all(|u| {
        Command::new("getent")
            .args(["passwd", u])
            .output()
            .unwrap()
            .status
            .success()
    });
    let check = Command::new(d.join("usr/local/sbin/postern-admin"))
        .arg("--config")
        .arg(moved.path())
        .arg("check")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    if users && crate::util::is_root() {
        assert!(
            check.status.success() && report.contains(": 0 errors,"),
            "{report}"
        );
    } else {
        let errors: Vec<&str> = report
            .lines()
            .filter(|l| !l.starts_with("warning: ") && !l.contains(" errors, "))
            .collect();
        assert!(
            !errors.is_empty() && errors.iter().all(|l| l.contains("make install")),
            "{report}"
        );
    }
    // cron, mutt and PHP find sendmail where they look for it.
    assert_eq!(
        std::fs::read_link(d.join("usr/sbin/sendmail")).unwrap(),
        Path::new("/usr/local/sbin/postern-inject")
    );
    assert_eq!(
        std::fs::read_link(d.join("usr/bin/mailq")).unwrap(),
        Path::new("/usr/local/sbin/mailq")
    );

    // Each man page renders, without a groff warning.
    let man8 = d.join("usr/local/share/man/man8");
    for page in [
        "postern.8",
        "postern-admin.8",
        "postern-inject.8",
        "postern-local.8",
        "postern-relay.8",
        "postern-auth.8",
        "postern-pop3d.8",
        "postern-imapd.8",
    ] {
        let out = Command::new("man")
            .env("MANPAGER", "cat")
            .arg("-l")
            .arg(man8.join(page))
            .output()
            .unwrap();
        assert!(out.status.success(), "{page}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("NAME"),
            "{page}"
        );
        let lint = Command::new("groff")
            .args(["-ww", "-z", "-man"])
            .arg(man8.join(page))
            .output()
            .unwrap();
        assert!(
            lint.stderr.is_empty(),
            "{page}: {}",
            String::from_utf8_lossy(&lint.stderr)
        );
    }

    // A second install keeps a config the admin changed.
    std::fs::write(etc.join("aliases"), "postmaster: admin@example.test\n").unwrap();
    make(&["install", &destdir]);
    assert_eq!(
        std::fs::read_to_string(etc.join("aliases")).unwrap(),
        "postmaster: admin@example.test\n"
    );

    // Uninstall takes everything back but that changed file.
    make(&["uninstall", &destdir]);
    assert_eq!(files_under(d), [etc.join("aliases")]);
    std::fs::remove_file(etc.join("aliases")).unwrap();
    make(&["uninstall", &destdir]);
    assert!(files_under(d).is_empty());

    // A config that was there before install, even one equal to the
    // sample, is not install's to remove.
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::copy(root().join("etc/domains"), etc.join("domains")).unwrap();
    make(&["install", &destdir]);
    make(&["uninstall", &destdir]);
    assert_eq!(files_under(d), [etc.join("domains")]);
}

#[test]
fn the_installed_units_verify() {
    // Installed for real under a temporary prefix, so that the programs the
    // units name exist where the units say.
    let prefix = tempfile::tempdir().unwrap();
    let p = prefix.path().display().to_string();
    let (prefix_arg, sysconf_arg) = (format!("PREFIX={p}"), format!("SYSCONFDIR={p}/etc"));
    let state_arg = format!("LOCALSTATEDIR={p}/var");
    // Nothing outside the prefix: no system users, no /usr/sbin/sendmail.
    let host = ["INSTALL_USERS=no", "SENDMAIL_LINKS="];
    make(
        &[
            &["install", &prefix_arg, &sysconf_arg, &state_arg],
            &host[..],
        ]
        .concat(),
    );
    let units: Vec<PathBuf> = std::fs::read_dir(prefix.path().join("lib/systemd/system"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!units.is_empty());
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    make(
        &[
            &["uninstall", &prefix_arg, &sysconf_arg, &state_arg],
            &host[..],
        ]
        .concat(),
    );
    assert!(files_under(prefix.path()).is_empty());
}

#[test]
fn install_users_is_idempotent() {
    if crate::util::skip_unless_root("install_users_is_idempotent") {
        return;
    }
    // useradd and groupadd lock /etc/passwd and /etc/group.
    let _accounts = crate::system_users::ACCOUNTS
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    make(&["install-users"]);
    make(&["install-users"]);
    for user in [
        "postern",
        "postern-smtpd",
        "postern-auth",
        "postern-login",
        "postern-remote",
        "postern-relay",
        "postern-mail",
    ] {
        let out = Command::new("getent")
            .args(["passwd", user])
            .output()
            .unwrap();
        let line = String::from_utf8_lossy(&out.stdout);
        assert!(
            line.ends_with(":/nonexistent:/usr/sbin/nologin\n"),
            "{user}: {line}"
        );
    }
}
