//! A message's header section as the client reads it (LF line ends, as
//! queued): where it ends, and a field's unfolded value — for the 8BITMIME
//! downgrade and for DKIM's choice of key.

/// The header section (without its blank line) and the body.
pub fn split(message: &[u8]) -> (&[u8], &[u8]) {
    if message.starts_with(b"\n") {
        return (&[], &message[1..]);
    }
    match message.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&message[..=at], &message[at + 2..]),
        None => (message, &[]),
    }
}

/// The first `name` field's value, unfolded; `head` may run on into the
/// body, which ends the search at the first empty line.
pub fn field(head: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines().take_while(|l| !l.is_empty()).peekable();
    while let Some(line) = lines.next() {
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        if field.trim().eq_ignore_ascii_case(name) {
            let mut value = value.to_string();
            while lines.peek().is_some_and(|l| l.starts_with([' ', '\t'])) {
                value.push_str(lines.next().unwrap_or_default());
            }
            return Some(value);
        }
    }
    None
}
