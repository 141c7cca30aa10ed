#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pingora_redirect_fuzz::config_case(data);
});
