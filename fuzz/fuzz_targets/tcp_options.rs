//! cargo fuzz target `tcp_options`: see [`ringstack_fuzz::tcp_options`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringstack_fuzz::tcp_options::run(data));
