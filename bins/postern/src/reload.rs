//! Reloading a running suite: `postern reload` finds the supervisor by its
//! pid file (beside postern-auth's socket) and sends it SIGUSR1; the
//! supervisor then restarts the programs only if postern.toml changed and
//! loads. A file that does not load changes nothing that runs.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use postern_config::{Config, Settings};

use crate::supervisor::say;

/// `<[auth] socket's directory>/postern.pid`: `/run/postern` on a host,
/// `DIR/var` in a sandbox.
fn pid_path(settings: &Settings) -> PathBuf {
    settings
        .auth
        .socket
        .parent()
        .unwrap_or(Path::new("/run/postern"))
        .join("postern.pid")
}

/// The supervisor's pid file, removed when it stops.
pub struct PidFile(Option<PathBuf>);

impl PidFile {
    pub fn write(settings: &Settings) -> PidFile {
        let path = pid_path(settings);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // Never through a link someone planted where the file goes.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .and_then(|mut file| {
                std::io::Write::write_all(&mut file, format!("{}\n", std::process::id()).as_bytes())
            });
        match written {
            Ok(()) => PidFile(Some(path)),
            Err(e) => {
                say(&format!(
                    "warning: {}: {e}; `postern reload` will not find this suite",
                    path.display()
                ));
                PidFile(None)
            }
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only while it is still ours: a second `postern up` may have
        // written its own since.
        if let Some(path) = &self.0
            && std::fs::read_to_string(path)
                .is_ok_and(|text| text.trim() == std::process::id().to_string())
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// postern.toml as the running programs were started with it.
pub struct Loaded {
    config: PathBuf,
    text: Option<String>,
}

impl Loaded {
    pub fn now(config: &Path) -> Loaded {
        Loaded {
            config: config.to_path_buf(),
            text: std::fs::read_to_string(config.join("postern.toml")).ok(),
        }
    }

    /// On a reload: the configuration to restart the programs with, when
    /// postern.toml changed and loads. Says what it decided.
    pub fn changed(&mut self) -> Option<Config> {
        let text = std::fs::read_to_string(self.config.join("postern.toml")).ok();
        let config = match Config::load(&self.config) {
            Ok(config) => config,
            Err(e) => {
                say(&format!(
                    "error: reload refused, every program keeps running as it was: {e}"
                ));
                return None;
            }
        };
        if text == self.text {
            say(
                "reload: postern.toml is unchanged (the maps count as they change); nothing to restart",
            );
            return None;
        }
        say("reload: postern.toml changed and loads; restarting the programs");
        self.text = text;
        Some(config)
    }
}

/// `postern reload`: SIGUSR1 to the supervisor of `config`'s suite.
pub fn signal(config: &Path) -> anyhow::Result<String> {
    // Said here, where the admin sees it, and not sent: the suite would
    // refuse it anyway.
    let loaded = match Config::load(config) {
        Ok(loaded) => loaded,
        Err(e) => bail!("not reloaded, everything keeps running as it was: {e}"),
    };
    let path = pid_path(&loaded.settings);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{} (is postern up running?)", path.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{}: not a pid", path.display()))?;
    // A stale file may name any process now: only `postern up` is told.
    let program = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let arguments = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let up = arguments.split(|&b| b == 0).any(|word| word == b"up");
    // (A program rebuilt since it started reads "postern (deleted)".)
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let is_postern = name.is_some_and(|n| n.trim_end_matches(" (deleted)") == "postern");
    if !is_postern || !up {
        bail!(
            "{}: pid {pid} is not postern up (a stale pid file?)",
            path.display()
        );
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGUSR1)
        .with_context(|| format!("signal postern up (pid {pid})"))?;
    Ok(format!(
        "asked postern up (pid {pid}) to reload; it logs what it did"
    ))
}
