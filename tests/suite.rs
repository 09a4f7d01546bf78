//! The one way tests start the suite: a sandbox of `postern up`, its
//! postern.toml changed first as the test asks (`postern init`, then one
//! start), every program's log in one file, waited on until postern-auth
//! and each configured port serve. And the clients most tests drive it
//! with: swaks and Python.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sandbox::{Up, init, port, sandbox_dir, start_logged, stop};

pub struct Suite {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    up: Option<Up>,
    /// Every program's log lines.
    pub log: PathBuf,
}

impl Suite {
    /// A sandbox whose postern.toml lines starting with a key of
    /// `replace` are replaced by those lines, where `{SMTP}` and
    /// `{submission}` stand for the sandbox's ports.
    pub fn start(replace: &[&str]) -> Suite {
        let (tmp, dir) = sandbox_dir();
        init(&dir);
        let toml = dir.join("etc/postern.toml");
        let text = std::fs::read_to_string(&toml).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for new in replace {
            let mut new = new
                .replace("{SMTP}", &port(&dir, "SMTP").to_string())
                .replace("{submission}", &port(&dir, "submission").to_string())
                .replace("{SMTPS}", &port(&dir, "SMTPS").to_string());
            for n in 1..=9 {
                let extra = crate::sandbox::extra_port(&dir, n).to_string();
                new = new.replace(&format!("{{PORT{n}}}"), &extra);
            }
            let key = new.split('=').next().unwrap().trim();
            lines.retain(|l| l.split('=').next().unwrap().trim() != key);
            lines.push(new.to_string());
        }
        std::fs::write(&toml, lines.join("\n") + "\n").unwrap();
        let log = tmp.path().join("postern.log");
        let up = start_logged(&dir, &log);
        // The banner comes once the programs are started; wait until
        // they serve: postern-auth's socket, and each port of smtpd and
        // pop3d that the configuration lists, as their logs say (a probe
        // connection would be a session some tests count).
        let socket = dir.join("var/auth.sock");
        let toml_text = lines.join("\n");
        let served: Vec<&str> = postern_config::services::programs()
            .iter()
            .filter(|program| program.under_postern_up())
            .flat_map(|program| program.ports.iter().map(|port| port.service))
            .collect();
        let listening: Vec<String> = served
            .into_iter()
            .map(|service| format!("127.0.0.1:{}", port(&dir, service)))
            .filter(|address| toml_text.contains(address.as_str()))
            .map(|address| format!("listening on {address} ("))
            .collect();
        crate::util::wait_until(
            std::time::Duration::from_secs(30),
            || {
                let logged = std::fs::read_to_string(&log).unwrap_or_default();
                socket.exists() && listening.iter().all(|line| logged.contains(line.as_str()))
            },
            || format!("the suite's servers never served in {}", dir.display()),
        );
        Suite {
            _tmp: tmp,
            dir,
            up: Some(up),
            log,
        }
    }

    pub fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }

    /// `postern-admin ARGS` run on this suite's configuration.
    pub fn admin(&self, args: &[&str]) -> std::process::Output {
        Command::new(crate::util::program("postern-admin"))
            .arg("--config")
            .arg(self.etc())
            .args(args)
            .output()
            .unwrap()
    }

    /// The sandbox's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `127.0.0.1:PORT` of a service.
    pub fn server(&self, service: &str) -> String {
        format!("127.0.0.1:{}", port(&self.dir, service))
    }

    pub fn port(&self, service: &str) -> String {
        port(&self.dir, service).to_string()
    }

    /// The loopback port `{PORTn}` stood for in `start`'s lines.
    pub fn extra_port(&self, n: u16) -> u16 {
        crate::sandbox::extra_port(&self.dir, n)
    }

    pub fn demo(&self) -> PathBuf {
        self.dir.join("mail/example.test/demo/Maildir")
    }

    pub fn password(&self) -> String {
        std::fs::read_to_string(self.etc().join("demo.password"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (10 s at most) until `needle` is in the log `count` times:
    /// the programs' lines reach it through the supervisor, a moment
    /// after the client has its answer. The log.
    pub fn wait_for_log_count(&self, needle: &str, count: usize) -> String {
        crate::util::wait_until(
            std::time::Duration::from_secs(10),
            || self.log_text().matches(needle).count() >= count,
            || {
                format!(
                    "{needle:?} not {count} times in the log:\n{}",
                    self.log_text()
                )
            },
        );
        self.log_text()
    }

    /// `wait_for_log_count` for one.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.wait_for_log_count(needle, 1)
    }

    pub fn stop(mut self) {
        if let Some(up) = self.up.take() {
            stop(up);
        }
    }
}

/// swaks's options for the demo account's AUTH PLAIN after STARTTLS.
pub fn demo_auth(password: &str) -> [&str; 7] {
    [
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "demo@example.test",
        "--auth-password",
        password,
    ]
}

/// Runs swaks; returns its exit code and output.
pub fn swaks(args: &[&str]) -> (i32, String) {
    crate::util::code_and_text(
        Command::new("swaks")
            .args(["--timeout", "20"])
            .args(args)
            .output()
            .unwrap(),
    )
}

/// Runs a Python script with smtplib at hand; asserts it prints "ok".
pub fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .args(["-c", script])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.ends_with("ok\n"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
