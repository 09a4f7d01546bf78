#![no_main]
//! A queue file's envelope: any bytes give an envelope and an offset
//! inside the input, or an error; an envelope that decodes encodes again
//! to what decodes the same.
use libfuzzer_sys::fuzz_target;
use postern_queue_format::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok((envelope, offset)) = Envelope::decode(data) {
        assert!(offset <= data.len());
        if let Ok(text) = envelope.encode() {
            let (again, _) = Envelope::decode(text.as_bytes()).expect("an encoded envelope decodes");
            assert_eq!(again, envelope);
        }
    }
});
