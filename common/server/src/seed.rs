//! The challenge seed: what makes each session's APOP timestamp and
//! CRAM-MD5 challenge one that no other session, here or on another host,
//! has issued, so a response seen on the wire cannot be replayed.

/// 96 random bits, the process and the time.
pub fn challenge_seed() -> String {
    let mut random = [0u8; 12];
    // libc's getrandom(2), bound at link time. The getrandom crate finds
    // it with dlsym at its first call, and that lookup alone pulls some
    // 200 KiB of the loader's and libc's pages into every forked session.
    // SAFETY: writes at most random.len() bytes into the array; with
    // flags 0 it blocks only before the kernel's pool is first ready.
    let filled = unsafe { libc::getrandom(random.as_mut_ptr().cast(), random.len(), 0) };
    if filled != random.len() as isize {
        // Not seen on Linux since 3.17; the pid and the time still make
        // the seed unique, if guessable.
        random = [0u8; 12];
    }
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{hex}.{}.{}",
        std::process::id(),
        postern_config::unix_now()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_differ_and_carry_no_character_a_challenge_cannot() {
        let first = super::challenge_seed();
        let second = super::challenge_seed();
        assert_ne!(first, second);
        assert!(
            first
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b.is_ascii_digit() || b == b'.'),
            "{first}"
        );
        assert_eq!(first.split('.').next().map(str::len), Some(24));
    }
}
