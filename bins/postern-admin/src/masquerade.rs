//! `masquerade set|del|list`: the masquerade map, edited like the others
//! (under its lock, atomically, every new line checked).

use std::path::Path;

use anyhow::bail;
use postern_config::edit::{MapKind, MapText};
use postern_config::masquerade::rule_line;

use crate::maps::{at, edit, path_of};

/// `masquerade set KEY TARGET`: a new rule, or KEY's rule replaced.
pub fn set(dir: &Path, key: &str, target: &str) -> anyhow::Result<String> {
    let (line, key) = rule_line(key, target).map_err(anyhow::Error::msg)?;
    edit(dir, MapKind::Masquerade, |map| {
        let message = match map.find(&key) {
            Some(range) => {
                let number = range.start + 1;
                map.replace(range, vec![line.clone()]);
                format!(
                    "{}: {key} now goes out as {}",
                    at(dir, MapKind::Masquerade, number),
                    target.trim()
                )
            }
            None => {
                let number = map.append(vec![line.clone()]);
                format!(
                    "{}: {key} goes out as {}",
                    at(dir, MapKind::Masquerade, number),
                    target.trim()
                )
            }
        };
        Ok(message)
    })
}

/// `masquerade del KEY`.
pub fn del(dir: &Path, key: &str) -> anyhow::Result<String> {
    let key = key.trim().to_lowercase();
    edit(dir, MapKind::Masquerade, |map| {
        let removed = map.remove_all(&key);
        if removed.is_empty() {
            bail!("no masquerade rule for {key}");
        }
        Ok(format!(
            "{}: {key} no longer masqueraded",
            at(dir, MapKind::Masquerade, removed[0])
        ))
    })
}

/// `masquerade list`: the rules as written.
pub fn list(dir: &Path) -> anyhow::Result<String> {
    let path = path_of(dir, MapKind::Masquerade);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => bail!("{}: {e}", path.display()),
    };
    let map = MapText::new(MapKind::Masquerade, &text);
    let lines: Vec<String> = map
        .entries()
        .into_iter()
        .map(|(_, range)| map.lines(range).join("\n").trim().to_string())
        .collect();
    Ok(lines.join("\n"))
}
