//! Fuzzes a request as it arrives on a connection: size prefix, header, and the body decoded as
//! the API's handler decodes it (Produce record sets validated as the log does before appending).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Bad input is an error; a panic (or an allocation the size of a lying length) is a crash.
    let _ = ringtail_server::fuzzing::request_frame(data);
});
