#![no_main]
//! Addresses arriving for the SRS domain: any text reverses or is
//! refused, never a panic; what the host writes, it takes back.
use libfuzzer_sys::fuzz_target;
use postern_srs::Srs;

fuzz_target!(|data: &[u8]| {
    let srs = Srs::new("fuzz secret\nold secret\n", "srs.fuzz.test", 21).unwrap();
    let text = String::from_utf8_lossy(data);
    let now = 1_796_600_000;
    let _ = srs.reverse(&text, now);
    // What the host writes, it takes back (SRS addresses of other hosts
    // come back in SRS0 form, their tag's case aside).
    let srs_already = text.get(..3).is_some_and(|t| t.eq_ignore_ascii_case("srs"));
    if let Ok(forwarded) = srs.forward(&text, now)
        && forwarded != text
        && !srs_already
    {
        assert_eq!(srs.reverse(&forwarded, now).unwrap(), text);
    }
});
