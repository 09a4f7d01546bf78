//! The listing of a maildrop, the form POP3's session takes it in.

/// A maildrop as it was found when opened: each message's size in
/// octets with CRLF line ends (RFC 1939 §11) and its unique id. Kept
/// compact — the ids in one text, each message a size and an end — since
/// a session may sit idle with a hundred thousand messages listed.
///
/// Cloning shares the same listing: the driver may keep one for its own
/// use (the file names) without a second copy of every id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    entries: std::sync::Arc<Entries>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Entries {
    sizes: Vec<u64>,
    ends: Vec<u32>,
    uidls: String,
}

impl Listing {
    pub fn with_capacity(messages: usize) -> Listing {
        Listing {
            entries: std::sync::Arc::new(Entries {
                sizes: Vec::with_capacity(messages),
                ends: Vec::with_capacity(messages),
                uidls: String::with_capacity(messages * 48),
            }),
        }
    }

    /// Adds a message (copying the listing first if it is shared).
    pub fn push(&mut self, size: u64, uidl: &str) {
        let entries = std::sync::Arc::make_mut(&mut self.entries);
        entries.uidls.push_str(uidl);
        entries.sizes.push(size);
        entries.ends.push(entries.uidls.len() as u32);
    }

    pub fn len(&self) -> usize {
        self.entries.sizes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.sizes.is_empty()
    }

    pub fn size(&self, index: usize) -> u64 {
        self.entries.sizes[index]
    }

    pub fn uidl(&self, index: usize) -> &str {
        let entries = &self.entries;
        let start = if index == 0 {
            0
        } else {
            entries.ends[index - 1] as usize
        };
        &entries.uidls[start..entries.ends[index] as usize]
    }

    /// Gives back what was reserved and not used.
    pub fn shrink_to_fit(&mut self) {
        let entries = std::sync::Arc::make_mut(&mut self.entries);
        entries.sizes.shrink_to_fit();
        entries.ends.shrink_to_fit();
        entries.uidls.shrink_to_fit();
    }
}
