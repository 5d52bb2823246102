#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| vpcd_bridge::frame::fuzz_frames(data));
