#![no_main]
//! A message as anyone may send it, through what IMAP makes of its form:
//! the MIME tree (boundaries found by hand), ENVELOPE, BODYSTRUCTURE,
//! BODY and the search columns. Never a panic, every part inside its
//! parent and the message, and every part of nested multiparts found
//! again by `locate` from its section number.
use libfuzzer_sys::fuzz_target;
use postern_imap::mime::structure::{Kind, Part, locate, tree};

fn check(
    part: &Part,
    within: &std::ops::Range<usize>,
    numbers: &mut Vec<u32>,
    top: &Part,
    numbered: bool,
) {
    assert!(within.start <= part.header.start && part.header.end <= part.body.start);
    assert!(part.body.start <= part.body.end && part.body.end <= within.end);
    match &part.kind {
        Kind::Leaf => {}
        Kind::Multipart(children) => {
            for (n, child) in children.iter().enumerate() {
                numbers.push(n as u32 + 1);
                if numbered {
                    assert!(std::ptr::eq(locate(top, numbers).expect("located"), child));
                }
                check(child, &part.body, numbers, top, numbered);
                numbers.pop();
            }
        }
        Kind::Message(enclosed) => check(enclosed, &part.body, numbers, top, false),
    }
}

fuzz_target!(|data: &[u8]| {
    let bytes = postern_maildir::crlf_line_ends(data);
    let top = tree(&bytes);
    check(&top, &(0..bytes.len()), &mut Vec::new(), &top, true);
    let fields = (postern_imap::describe::DESCRIBE.fields)(&bytes);
    assert_eq!(fields.len(), 9);
    assert!(fields[0].starts_with(b"(") && fields[1].starts_with(b"("));
});
