//! Go durations: no panics; every parsed value formats and parses back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metrics_server_core::{format_duration, parse_duration};

fuzz_target!(|data: &str| {
    if let Ok(ns) = parse_duration(data) {
        assert_eq!(parse_duration(&format_duration(ns)), Ok(ns));
    }
});
