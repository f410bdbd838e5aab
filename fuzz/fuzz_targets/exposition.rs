//! The kubelet exposition decoder must never panic, and its output must keep
//! the C.7 invariants whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metrics_server_core::exposition::parse_exposition;

fuzz_target!(|data: &[u8]| {
    let out = parse_exposition(data, 1_700_000_000_000_000_000);
    if let Some(n) = out.scrape.node {
        assert!(n.cumulative_cpu_ns != 0 && n.memory_bytes != 0);
    }
    for p in &out.scrape.pods {
        assert!(!p.containers.is_empty());
        assert!(
            p.containers
                .iter()
                .all(|(_, c)| c.cumulative_cpu_ns != 0 && c.memory_bytes != 0)
        );
    }
    let _ = out.into_result();
});
