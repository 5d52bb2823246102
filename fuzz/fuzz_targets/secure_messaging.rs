#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| emulator::testkit::targets::secure_messaging(data));
