//! cargo fuzz target `script`: see [`ringstack_fuzz::script`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringstack_fuzz::script::run(data));
