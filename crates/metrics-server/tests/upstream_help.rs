//! Our `--help` against upstream's real one: same sections in the same order, and in each the
//! same flags with the same shorthands, value types and defaults; but no description of ours
//! is upstream's. Needs upstream's binary in `MS_UPSTREAM_BIN` (`make differential` sets it
//! to `.cluster/bin/metrics-server-upstream`); without it the test says so and passes.

// The skip reason is printed so a run without the binary says what it did not check.
#![allow(clippy::print_stderr)]

use std::collections::{BTreeMap, HashSet};
use std::process::Command;

use metrics_server::flags::help_doc::{self, HelpFlag, OWN_SECTION};

fn help_of(binary: &str) -> String {
    let out = Command::new(binary)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"));
    assert_eq!(out.status.code(), Some(0), "{binary} --help failed");
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// Upstream's help, or `None` (with the reason printed) when no binary is configured.
fn upstream_help() -> Option<String> {
    match std::env::var("MS_UPSTREAM_BIN") {
        Ok(path) if !path.is_empty() => Some(help_of(&path)),
        _ => {
            eprintln!(
                "skipped: MS_UPSTREAM_BIN is not set (make differential sets it to upstream's binary)"
            );
            None
        }
    }
}

fn ours() -> String {
    help_of(env!("CARGO_BIN_EXE_metrics-server"))
}

/// Everything of a flag that is contract, not prose.
fn contract(f: &HelpFlag) -> (String, Option<char>, String, String, Option<String>) {
    (
        f.section.clone(),
        f.short,
        f.name.clone(),
        f.type_name.clone(),
        f.default.clone(),
    )
}

#[test]
fn sections_flags_types_and_defaults_are_upstreams() {
    let Some(upstream) = upstream_help() else {
        return;
    };
    let ours = ours();
    let mut our_sections = help_doc::sections(&ours);
    assert_eq!(our_sections.pop().as_deref(), Some(OWN_SECTION));
    assert_eq!(our_sections, help_doc::sections(&upstream));

    let theirs: Vec<_> = help_doc::flags(&upstream).iter().map(contract).collect();
    let mine: Vec<_> = help_doc::flags(&ours)
        .iter()
        .filter(|f| f.section != OWN_SECTION)
        .map(contract)
        .collect();
    assert!(
        theirs.len() > 100,
        "upstream's help parsed to {} flags",
        theirs.len()
    );
    for (a, b) in mine.iter().zip(&theirs) {
        assert_eq!(a, b, "ours (left) and upstream's (right) differ");
    }
    assert_eq!(mine.len(), theirs.len());
    // Our own flags must not collide with any of upstream's.
    let names: HashSet<_> = theirs.iter().map(|c| c.2.clone()).collect();
    for own in help_doc::flags(&ours)
        .iter()
        .filter(|f| f.section == OWN_SECTION)
    {
        assert!(!names.contains(&own.name), "--{} is upstream's", own.name);
    }
}

/// Lowercase words, punctuation dropped.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn no_description_is_upstreams() {
    let Some(upstream) = upstream_help() else {
        return;
    };
    let theirs: BTreeMap<String, String> = help_doc::flags(&upstream)
        .into_iter()
        .map(|f| (f.name, f.description))
        .collect();
    // Runs of this many words in a row shared with upstream's text of the same flag count as
    // copied prose; shorter runs are names and facts ("the duration to cache").
    const RUN: usize = 7;
    for ours in help_doc::flags(&ours()) {
        let Some(upstream_text) = theirs.get(&ours.name) else {
            continue;
        };
        assert_ne!(
            &ours.description, upstream_text,
            "--{} is upstream's text",
            ours.name
        );
        let their_words = words(upstream_text);
        let their_runs: HashSet<&[String]> = their_words.windows(RUN).collect();
        let mine = words(&ours.description);
        if let Some(run) = mine.windows(RUN).find(|w| their_runs.contains(w)) {
            panic!("--{}: {:?} is upstream's wording", ours.name, run.join(" "));
        }
    }
}
