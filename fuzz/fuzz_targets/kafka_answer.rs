#![no_main]
// Body and checks live in surge_tests::fuzz so the suite's stable smoke run shares them.
libfuzzer_sys::fuzz_target!(|data: &[u8]| surge_tests::fuzz::kafka_answer(data));
