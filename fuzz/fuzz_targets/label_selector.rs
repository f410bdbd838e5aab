//! Label selectors: no panics, and a parsed selector prints to a string that
//! parses back to the same selector.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metrics_server_core::selector::LabelSelector;

fuzz_target!(|data: &str| {
    if let Ok(sel) = LabelSelector::parse(data) {
        let printed = sel.to_string();
        let again = LabelSelector::parse(&printed).expect("printed selector reparses");
        assert_eq!(again.to_string(), printed);
    }
});
