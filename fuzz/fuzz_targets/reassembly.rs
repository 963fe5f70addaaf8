//! cargo fuzz target `reassembly`: see [`ringstack_fuzz::reassembly`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringstack_fuzz::reassembly::run(data));
