//! Listing one Maildir directory: `cur/` (from the cache while it has not
//! changed) and `new/`, whose messages move to `cur/` as any Maildir
//! reader moves them, in delivery order.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use crate::Cut;
use crate::cache::{Cache, stamp};
use crate::measure::{Entry, measure};
use crate::names::{base_of, delivery_time};

/// One Maildir directory (INBOX or a folder): its messages in file-name
/// order, after the moves from `new/`, and Dovecot's UIDLs for them; its
/// cache brought up to date. With a `cut`, the octets it leaves out of
/// each message are known too.
pub fn scan(path: &Path, cut: Option<Cut>) -> io::Result<(Vec<Entry>, HashMap<String, String>)> {
    let dovecot = crate::uidlist::pop3_uidls(path)?;
    let cache = Cache::read(path);
    let cur = stamp(&path.join("cur"))?;
    // The cache lists cur/ as it was when its time was taken: while cur/
    // has that time still, nothing was added, renamed or removed there,
    // and no readdir of a large cur/ is needed.
    let (mut found, mut changed) = if cache.stamp == Some(cur) {
        (cache.entries.clone(), false)
    } else {
        let names = names_in(&path.join("cur"))?;
        let listed = names
            .into_iter()
            .map(|name| cache.known(name, false))
            .collect();
        (listed, true)
    };
    for name in names_in(&path.join("new"))? {
        let moved = format!("{name}:2,");
        match std::fs::rename(path.join("new").join(&name), path.join("cur").join(&moved)) {
            Ok(()) => found.push(cache.known(moved, false)),
            // Another reader moved it first: it will be in cur/.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(_) => found.push(cache.known(name, true)),
        }
        changed = true;
    }
    if measure(path, &mut found, cut)? {
        changed = true;
    }
    // Delivery order: the delivery time comes first in the name.
    found.sort_by_cached_key(|entry| {
        let base = base_of(&entry.name);
        (delivery_time(base), base.to_string())
    });
    if changed {
        // Only a cache: a failure to write it costs a readdir next time.
        let _ = cache.write(path, &found);
    }
    Ok((found, dovecot))
}

/// The message file names of a directory (dot files are not messages).
fn names_in(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        if let Ok(name) = entry?.file_name().into_string()
            && !name.starts_with('.')
        {
            names.push(name);
        }
    }
    Ok(names)
}
