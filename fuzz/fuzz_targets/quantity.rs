//! Quantities: no panics in parsing or in any scaling.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metrics_server_core::quantity::Quantity;

fuzz_target!(|data: &str| {
    if let Ok(q) = Quantity::parse(data) {
        for scale in [-9, -6, -3, 0, 3, 9, 18] {
            let _ = q.scaled_value(scale);
        }
    }
});
