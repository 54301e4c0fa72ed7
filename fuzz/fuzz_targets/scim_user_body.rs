#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rollcall::fuzzing::scim_user_body(data));
