//! Reads the structure out of a cobra/pflag `--help` text: section headings, and per flag its
//! shorthand, name, value type, default and description. The tests use it to hold our help
//! text to upstream's contract (names, types, defaults, section order) without comparing
//! prose, and to check it against the flags we actually parse.

/// Heading of the section that lists our own flags (after upstream's sections).
pub const OWN_SECTION: &str = "metrics-server-rs flags:";

/// One flag as a help text lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelpFlag {
    /// The heading of the section it is listed under, with its colon.
    pub section: String,
    /// `-l` in `-l, --node-selector`.
    pub short: Option<char>,
    /// Long name without dashes.
    pub name: String,
    /// pflag's value type (`string`, `duration`, ...); empty for booleans.
    pub type_name: String,
    /// What `(default ...)` at the end of the description says, verbatim.
    pub default: Option<String>,
    /// The description without the default, whitespace collapsed to single spaces.
    pub description: String,
}

/// The section headings in order (lines like `Logging flags:`), without `Usage:`.
pub fn sections(help: &str) -> Vec<String> {
    help.lines()
        .filter(|l| is_heading(l))
        .map(str::to_owned)
        .collect()
}

fn is_heading(line: &str) -> bool {
    !line.is_empty() && !line.starts_with(' ') && line.ends_with(':') && line != "Usage:"
}

/// Every flag in the order listed.
pub fn flags(help: &str) -> Vec<HelpFlag> {
    let mut out: Vec<HelpFlag> = Vec::new();
    let mut section = String::new();
    // Raw description text of the flag being read, continuation lines included.
    let mut text = String::new();
    for line in help.lines() {
        if is_heading(line) {
            finish(&mut out, &mut text);
            section = line.to_owned();
        } else if let Some(flag) = flag_line(line, &section) {
            finish(&mut out, &mut text);
            text = flag.description.clone();
            out.push(flag);
        } else if line.trim().is_empty() {
            continue;
        } else if line.starts_with(' ') && !out.is_empty() {
            text.push(' ');
            text.push_str(line.trim());
        }
    }
    finish(&mut out, &mut text);
    out
}

/// Splits the collected text of the last flag into description and default.
fn finish(out: &mut [HelpFlag], text: &mut String) {
    let Some(flag) = out.last_mut() else { return };
    if text.is_empty() {
        return;
    }
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.clear();
    match joined.rfind("(default ").filter(|_| joined.ends_with(')')) {
        Some(at) => {
            let inner = &joined[at + "(default ".len()..joined.len() - 1];
            flag.default = Some(inner.to_owned());
            flag.description = joined[..at].trim_end().to_owned();
        }
        None => {
            flag.default = None;
            flag.description = joined;
        }
    }
}

/// `      --name type   text` or `  -x, --name type   text`.
fn flag_line(line: &str, section: &str) -> Option<HelpFlag> {
    let (short, rest) = if let Some(rest) = line.strip_prefix("      --") {
        (None, rest)
    } else {
        let rest = line.strip_prefix("  -")?;
        let mut chars = rest.chars();
        let c = chars.next()?;
        (Some(c), chars.as_str().strip_prefix(", --")?)
    };
    let name_end = rest.find(' ').unwrap_or(rest.len());
    let (name, mut rest) = rest.split_at(name_end);
    let mut type_name = "";
    // A type follows after exactly one space; the description after two or more.
    if rest.starts_with(' ') && !rest.starts_with("  ") {
        let after = &rest[1..];
        let end = after.find(' ').unwrap_or(after.len());
        type_name = &after[..end];
        rest = &after[end..];
    }
    Some(HelpFlag {
        section: section.to_owned(),
        short,
        name: name.to_owned(),
        type_name: type_name.to_owned(),
        default: None,
        description: rest.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Intro\n\nUsage:\n   [flags]\n\nFirst flags:\n\n      \
        --alpha string     Some text\n                         that wraps. (default \"x y\")\n      \
        --beta             A switch\n\nSecond flags:\n\n  -v, --v Level   Loudness\n\
        \x20                 --not-a-flag continuation (default 3)\n";

    #[test]
    fn sections_flags_types_defaults_and_wrapped_text_are_read() {
        assert_eq!(sections(SAMPLE), ["First flags:", "Second flags:"]);
        let f = flags(SAMPLE);
        assert_eq!(f.len(), 3, "{f:?}");
        assert_eq!(
            (f[0].name.as_str(), f[0].type_name.as_str()),
            ("alpha", "string")
        );
        assert_eq!(f[0].default.as_deref(), Some("\"x y\""));
        assert_eq!(f[0].description, "Some text that wraps.");
        assert_eq!((f[1].type_name.as_str(), f[1].default.as_ref()), ("", None));
        assert_eq!(f[1].section, "First flags:");
        assert_eq!((f[2].short, f[2].type_name.as_str()), (Some('v'), "Level"));
        assert_eq!(f[2].section, "Second flags:");
        assert_eq!(f[2].default.as_deref(), Some("3"));
        assert_eq!(f[2].description, "Loudness --not-a-flag continuation");
    }
}
