//! Fuzz target: the state-sync sessions as state machines. The bytes are a
//! script (frames either way, honest, replayed, mutated or made up without
//! the key; records; time passing; cuts and reconnects) played against a
//! publisher and a subscriber and against a publisher only an attacker
//! talks to (`tandem_control::sync::session::exercise_sessions`): nothing
//! may panic, queues stay bounded, and the attacked publisher sends nothing
//! but handshake Replies and never completes a handshake.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = tandem_control::sync::session::exercise_sessions(data) {
        panic!("invariant: {broken}");
    }
});
