//! `explain ADDR`: how an address resolves, step by step, with the
//! `file:line` of every rule used — the answer to "where did my mail go".

use std::path::Path;

use postern_config::{Address, Config};

pub fn run(dir: &Path, address: &str) -> anyhow::Result<String> {
    let config = Config::load(dir)?;
    let address = Address::parse(address).map_err(|e| anyhow::anyhow!("{address:?}: {e}"))?;
    let resolution = config.resolver().resolve(&address);
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
            for line in system_user(name) {
                out.push(format!("{indent}  {line}"));
            }
        }
    }
    Ok(out.join("\n"))
}

/// What happens at a system user: their Maildir, or why not.
fn system_user(name: &str) -> Vec<String> {
    match postern_privilege::lookup_user(name) {
        None => vec!["no such user: 5.1.1 user unknown".to_string()],
        Some(user) if user.uid == 0 => {
            vec![format!(
                "{name} is uid 0: deferred (4.3.0) until an alias sends root's mail to a person"
            )]
        }
        Some(user) => vec![format!(
            "uid {} → {}/",
            user.uid,
            user.home.join("Maildir").display()
        )],
    }
}
