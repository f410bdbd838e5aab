//! Field selectors: no panics; printing and reparsing is stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metrics_server_core::selector::FieldSelector;

fuzz_target!(|data: &str| {
    if let Ok(sel) = FieldSelector::parse(data) {
        let printed = sel.to_string();
        let again = FieldSelector::parse(&printed).expect("printed selector reparses");
        assert_eq!(again.to_string(), printed);
    }
});
