//! Field selectors: no panics; a printed selector reparses to the same terms, and printing
//! reaches a fixed point after one round (Go orders terms by their raw text, and printing
//! normalises `==` to `=`, so the first reprint may reorder them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use metrics_server_core::selector::{FieldSelector, FieldTerm};

fn sorted(sel: &FieldSelector) -> Vec<FieldTerm> {
    let mut terms = sel.terms().to_vec();
    terms.sort_by(|a, b| {
        (&a.field, &a.value, a.operator as u8).cmp(&(&b.field, &b.value, b.operator as u8))
    });
    terms
}

fuzz_target!(|data: &str| {
    if let Ok(sel) = FieldSelector::parse(data) {
        let printed = sel.to_string();
        let again = FieldSelector::parse(&printed).expect("printed selector reparses");
        assert_eq!(sorted(&again), sorted(&sel));
        let fixed = again.to_string();
        let third = FieldSelector::parse(&fixed).expect("reprinted selector reparses");
        assert_eq!(third.to_string(), fixed);
    }
});
