#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| emulator::fuzzing::targets::cvc(data));
