use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A program built by `cargo build --workspace`.
pub fn program(name: &str) -> PathBuf {
    let dir = match std::env::var_os("POSTERN_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"),
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make test` (it builds the programs first)",
        path.display()
    );
    path
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The uid and gid that own mail in a test: as root a numeric id with no
/// passwd entry (as `postern up` uses), else our own.
pub fn mail_owner() -> (u32, u32) {
    if is_root() {
        (64101, 64101)
    } else {
        // SAFETY: getuid and getgid have no preconditions.
        unsafe { (libc::getuid(), libc::getgid()) }
    }
}

/// A configuration directory and mail root in a fresh temporary directory.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub etc: PathBuf,
    pub mail: PathBuf,
    pub owner: (u32, u32),
}

pub const HOST: &str = "mx.example.test";

/// Tests send no mail off this machine: mail for other hosts asks a name
/// server that is not there, and is deferred (4.4.3) in about three
/// seconds, unless a test starts its own DNS.
pub const NO_DNS: &str = "remote.nameservers = [\"127.0.0.1:9\"]\nremote.dns_timeout = \"1s\"\n";

impl Setup {
    pub fn new() -> Setup {
        Setup::with_settings("")
    }

    /// `extra` is appended to postern.toml; it may set `smtpd.` and
    /// `auth.` keys other than `relayers_file` and `user` as dotted keys,
    /// not as tables (those keys are set that way before it).
    pub fn with_settings(extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        // Mail owners must reach the mail root under the temporary dir.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let etc = dir.path().join("etc");
        let mail = dir.path().join("mail");
        let queue = dir.path().join("queue");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(&mail).unwrap();
        std::fs::create_dir_all(&queue).unwrap();
        std::fs::create_dir_all(dir.path().join("relay")).unwrap();
        postern_queue_format::QueueDir::create(&queue).unwrap();
        let owner = mail_owner();
        std::os::unix::fs::chown(&mail, Some(owner.0), Some(owner.1)).unwrap();
        // The mail owner's ids stand in for the queue's user too: forwards
        // are queued as it.
        for part in ["", "tmp", "queue", "state", "trigger", "../relay"] {
            std::os::unix::fs::chown(queue.join(part), Some(owner.0), Some(owner.1)).unwrap();
        }
        let setup = Setup {
            dir,
            etc,
            mail,
            owner,
        };
        setup.write(
            "postern.toml",
            &format!(
                "hostname = \"{HOST}\"\nmail_root = \"{}\"\nqueue_dir = \"{}\"\nmail_owner = \"{o}\"\nqueue_user = \"{o}\"\nlog = \"stderr\"\nsmtpd.relayers_file = \"{}\"\nauth.user = \"{o}\"\n{NO_DNS}remote.user = \"{o}\"\n{extra}",
                setup.mail.display(),
                setup.queue().display(),
                setup.relayers_file().display(),
                o = format_args!("{}:{}", owner.0, owner.1),
            ),
        );
        setup.write("domains", "example.test virtual\nother.test virtual\n");
        setup
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The relayers file, in a directory of the test's roles.
    pub fn relayers_file(&self) -> PathBuf {
        self.dir.path().join("relay/relayers")
    }

    /// Where a root-run `postern-local --batch` may read messages.
    pub fn queue(&self) -> PathBuf {
        self.dir.path().join("queue")
    }

    /// Writes a message file in the queue directory.
    pub fn queue_file(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.queue().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    /// The accepted messages of the queue: envelope and data.
    pub fn queued(&self) -> Vec<(postern_queue_format::Envelope, Vec<u8>)> {
        let queue = postern_queue_format::QueueDir::at(self.queue());
        queue
            .queued()
            .unwrap()
            .iter()
            .map(|id| {
                let (envelope, offset) = queue.read_envelope(id).unwrap();
                let bytes = std::fs::read(queue.queue_file(id)).unwrap();
                (envelope, bytes[offset as usize..].to_vec())
            })
            .collect()
    }

    /// The one message in the queue: its envelope and its data.
    pub fn only_queued(&self) -> (postern_queue_format::Envelope, Vec<u8>) {
        let mut queued = self.queued();
        assert_eq!(queued.len(), 1, "expected one queued message");
        queued.pop().expect("one message")
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.etc.join(name), text).unwrap();
    }

    /// Adds a mailbox with `postern-admin mailbox add`, as an admin would.
    pub fn add_mailbox(&self, address: &str, extra: &[&str]) {
        let password = self.path().join("password");
        std::fs::write(&password, "secret\n").unwrap();
        let out = Command::new(program("postern-admin"))
            .arg("--config")
            .arg(&self.etc)
            .args(["mailbox", "add", address, "--password-file"])
            .arg(&password)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mailbox add {address}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The default Maildir of a virtual mailbox.
    pub fn maildir(&self, address: &str) -> PathBuf {
        let (local, domain) = address.split_once('@').unwrap();
        self.mail.join(domain).join(local).join("Maildir")
    }

    /// `postern-local --config ETC -f SENDER RECIPIENT < message`, with
    /// the message in a file (as the queue passes it).
    pub fn local(&self, sender: &str, recipient: &str, message: &[u8]) -> Delivery {
        self.local_args(&["-f", sender, recipient], message)
    }

    pub fn local_args(&self, args: &[&str], message: &[u8]) -> Delivery {
        let file = self.path().join(format!("message-{}", unique()));
        std::fs::write(&file, message).unwrap();
        let out = Command::new(program("postern-local"))
            .arg("--config")
            .arg(&self.etc)
            .args(args)
            .stdin(std::fs::File::open(&file).unwrap())
            .output()
            .unwrap();
        Delivery::from(out)
    }

    /// The same through a pipe, as `cat message | postern-local` does.
    pub fn local_piped(&self, sender: &str, recipient: &str, message: &[u8]) -> Delivery {
        let mut command = Command::new(program("postern-local"));
        command
            .arg("--config")
            .arg(&self.etc)
            .args(["-f", sender, recipient]);
        Delivery::from(run_with_input(&mut command, message))
    }

    pub fn admin(&self, args: &[&str]) -> Output {
        Command::new(program("postern-admin"))
            .arg("--config")
            .arg(&self.etc)
            .args(args)
            .output()
            .unwrap()
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// What postern-local answered.
#[derive(Debug)]
pub struct Delivery {
    pub code: i32,
    /// The last line of stderr: the status line.
    pub status: String,
    pub stderr: String,
}

impl From<Output> for Delivery {
    fn from(out: Output) -> Delivery {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        Delivery {
            code: out.status.code().unwrap_or(-1),
            status: stderr.lines().last().unwrap_or_default().to_string(),
            stderr,
        }
    }
}

impl Delivery {
    #[track_caller]
    pub fn expect(&self, code: i32, status_prefix: &str) {
        assert!(
            self.code == code && self.status.starts_with(status_prefix),
            "expected exit {code} and status {status_prefix:?}, got exit {} and:\n{}",
            self.code,
            self.stderr
        );
    }
}

/// The files in a Maildir's `new/` and `cur/`: (file name, content).
pub fn messages(maildir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for path in files {
            out.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            ));
        }
    }
    out
}

/// Every file and directory under `root` whose owner is uid 0.
pub fn owned_by_root(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.uid() == 0 {
            found.push(path.clone());
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
    }
    found
}

pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIP {test}: needs root (CI runs as root)");
    true
}

/// `ADMIN --config ETC check`, which must pass; returns what it printed.
#[track_caller]
pub fn check_passes(admin: &Path, etc: &Path) -> String {
    let out = Command::new(admin)
        .arg("--config")
        .arg(etc)
        .arg("check")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    stdout
}

/// A finished program's exit code (-1 if killed), and its stdout then
/// stderr.
pub fn code_and_text(out: Output) -> (i32, String) {
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Runs `command` with `input` on a pipe to its stdin, collecting stdout and
/// stderr.
pub fn run_with_input(command: &mut Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // A writer of its own, so a program that answers before it has read
    // everything cannot deadlock the test.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

/// An envelope's recipient addresses, in order.
pub fn recipients(envelope: &postern_queue_format::Envelope) -> Vec<&str> {
    envelope
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect()
}

/// Waits, checking every 50 ms and at most `limit`, until `done` holds;
/// else fails with `why()`.
pub fn wait_until(
    limit: std::time::Duration,
    mut done: impl FnMut() -> bool,
    why: impl Fn() -> String,
) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{}", why());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child killed when dropped.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `program --config etc` started by systemd-socket-activate on a free
/// loopback port: with the listening socket (`Accept=no`, LISTEN_FDS), or
/// one process per connection on stdin and stdout (`Accept=yes`, as inetd
/// does, with `--inetd`). The port, and the activator (stopped on drop).
pub fn socket_activated(program: &Path, etc: &Path, per_connection: bool) -> (u16, Running) {
    let port = free_port();
    let mut command = Command::new("systemd-socket-activate");
    command.args(["-l", &format!("127.0.0.1:{port}")]);
    if per_connection {
        command.args(["--inetd", "-a"]);
    }
    command.arg(program).arg("--config").arg(etc);
    if per_connection {
        command.arg("--inetd");
    }
    (port, Running(command.spawn().unwrap()))
}

/// A program's stdout, once it has succeeded (else it fails with its
/// stderr).
pub fn success_text(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A program's stdout lines, once it has succeeded (else its stderr).
pub fn success_lines(out: Output) -> Vec<String> {
    success_text(out).lines().map(str::to_string).collect()
}
