//! The README's "Installing for real", followed line by line on a host
//! without Postern's users, directories or /etc/postern: this machine, in
//! mount, network and process namespaces of the test's own, with /etc,
//! /usr, /var and /home overlaid so that nothing reaches the real ones.
//! It ends as a new admin's first day does: a shell user sends with mutt
//! (its own sendmail call, under umask 077) through /usr/sbin/sendmail,
//! and the mailbox's owner reads the message over POP3.

use std::path::Path;
use std::process::Command;

fn source_tree() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The commands of the README's "Installing for real" block.
fn readme_steps() -> Vec<String> {
    let readme = std::fs::read_to_string(source_tree().join("README.md")).unwrap();
    let section = readme
        .split("## Installing for real")
        .nth(1)
        .expect("the README has the section");
    section
        .lines()
        .skip_while(|l| !l.starts_with("    "))
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().split("  #").next().unwrap().trim().to_string())
        .collect()
}

/// Each README step as the test runs it. Only what a test cannot do as
/// written is changed: `make install` installs what `make test` built
/// (PROFILE=debug NOBUILD=1), the password comes on stdin instead of a
/// prompt, and systemd's `enable --now` runs the installed unit's
/// ExecStart line (there is no systemd in the namespace).
fn as_run(step: &str) -> String {
    if step == "make install" {
        return format!(
            "make -C {} --no-print-directory install PROFILE=debug NOBUILD=1",
            source_tree().display()
        );
    }
    if step.starts_with("postern-admin mailbox add ") {
        return format!("echo 'Alice s3cret pass' | {step}");
    }
    if step == "systemctl enable --now postern" {
        return "start=$(sed -n 's/^ExecStart=//p' /usr/local/lib/systemd/system/postern.service)\n\
                $start > $T/postern-up.log 2>&1 &"
            .to_string();
    }
    step.to_string()
}

const PREPARE: &str = r#"
set -eu
T=$1
for d in etc usr var home; do
    mkdir -p $T/$d.upper $T/$d.work
    mount -t overlay overlay -o lowerdir=/$d,upperdir=$T/$d.upper,workdir=$T/$d.work /$d
done
mount -t tmpfs tmpfs /run
ip link set lo up
# A host without Postern: none of its users, directories or links.
for u in postern postern-smtpd postern-auth postern-login postern-proxy postern-remote postern-relay postern-mail; do
    if getent passwd $u >/dev/null; then userdel $u; fi
    if getent group $u >/dev/null; then groupdel $u; fi
done
rm -rf /etc/postern /var/spool/postern /var/mail/postern /var/lib/postern /usr/local/sbin/postern* \
    /usr/local/share/postern /usr/sbin/sendmail /usr/lib/sendmail /usr/bin/mailq
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cd /
"#;

const AFTERWARDS: &str = r#"
echo "== the suite starts"
for i in $(seq 100); do
    if python3 -c 'import socket; socket.create_connection(("127.0.0.1", 110), 1); socket.create_connection(("127.0.0.1", 25), 1)' 2>/dev/null; then break; fi
    sleep 0.2
done
echo "== a shell user sends with mutt through /usr/sbin/sendmail"
useradd --create-home --shell /bin/bash pat
su - pat -c "umask 077; printf 'Hello from the shell.\n' > body; mutt -n -F /dev/null -s 'first mail' alice@example.com < body"
ls -l /usr/sbin/sendmail
echo "== alice reads it over POP3"
python3 - <<'PY'
import poplib, sys, time
for attempt in range(150):
    pop = poplib.POP3("127.0.0.1", 110)
    pop.user("alice@example.com")
    pop.pass_("Alice s3cret pass")
    count, _ = pop.stat()
    if count:
        _, lines, _ = pop.retr(1)
        pop.quit()
        sys.stdout.write("\n".join(l.decode() for l in lines) + "\n")
        break
    pop.quit()
    time.sleep(0.2)
else:
    print("no message arrived")
    sys.exit(1)
PY
echo "== done"
"#;

#[test]
fn the_readme_install_works_on_a_fresh_host() {
    if crate::util::skip_unless_root("the_readme_install_works_on_a_fresh_host") {
        return;
    }
    let steps = readme_steps();
    assert_eq!(steps.first().map(String::as_str), Some("make install"));
    assert!(
        steps.iter().any(|s| s == "postern-admin check"),
        "{steps:?}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut script = String::from(PREPARE);
    for step in &steps {
        script.push_str(&format!("echo '== {step}'\n{}\n", as_run(step)));
    }
    script.push_str(AFTERWARDS);
    script.push_str("echo '== the suite logged'; cat $T/postern-up.log\n");
    // Its own namespaces: whatever it starts ends with it.
    let out = Command::new("timeout")
        .args(["300", "unshare", "--mount", "--net", "--pid", "--fork"])
        .args([
            "--kill-child",
            "--mount-proc",
            "bash",
            "-c",
            &script,
            "fresh-host",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("{stdout}\n--- stderr:\n{stderr}");
    assert!(out.status.success(), "{all}");
    // check passed as the README says it must.
    assert!(stdout.contains("/etc/postern: 0 errors, "), "{all}");
    assert!(
        stdout.contains("/usr/sbin/sendmail -> /usr/local/sbin/postern-inject"),
        "{all}"
    );
    // The message as mutt wrote it, from the shell user, through the queue.
    let message = stdout
        .split("== alice reads it over POP3\n")
        .nth(1)
        .unwrap_or_default();
    assert!(message.contains("Subject: first mail\n"), "{all}");
    assert!(message.contains("Return-Path: <pat@"), "{all}");
    assert!(message.contains("\nHello from the shell.\n"), "{all}");
}
