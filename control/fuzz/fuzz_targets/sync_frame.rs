//! Fuzz target: the state-sync frame parser on arbitrary bytes. Runs every
//! parser of `tandem_control::sync::wire` (frame view and `Repr`, with the
//! MAC as given and made valid so the body and record parsers are reached,
//! records alone, the stream `Deframer`): none may panic, and a frame that
//! parses must re-encode to one that parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(mismatch) = tandem_control::sync::wire::exercise_parsers(data) {
        panic!("round trip: {mismatch}");
    }
});
