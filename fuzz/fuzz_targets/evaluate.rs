#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fear_fuzz::evaluate(data));
