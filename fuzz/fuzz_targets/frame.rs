//! cargo fuzz target `frame`: see [`ringstack_fuzz::frame`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringstack_fuzz::frame::run(data));
