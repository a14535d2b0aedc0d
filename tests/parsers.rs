//! The policy and trace parsers take operator input: whatever the bytes,
//! they answer Ok or a reasoned error, never a panic.

use prescient::policy::{EMBEDDED_POLICY, Policy};
use prescient::sim::Trace;
use proptest::prelude::*;

/// The example policy with a few bytes overwritten, inserted or removed:
/// close enough to YAML to reach deep into the parser and the validator.
fn mutated_policy() -> impl Strategy<Value = String> {
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8);
    edits.prop_map(|edits| {
        let mut bytes = EMBEDDED_POLICY.as_bytes().to_vec();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len().max(1));
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i.min(bytes.len()), byte),
                _ if i < bytes.len() => {
                    bytes.remove(i);
                }
                _ => {}
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn trace_text() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        "[0-9]{1,6}(\\.[0-9]{1,3})?",
        "-?[0-9e.+-]{1,8}",
        "2026-11-2[0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z",
        "(checkout|search|zed|api|db_queries|)",
        ".{0,6}",
    ];
    let row = prop::collection::vec(field, 0..6).prop_map(|f| f.join(","));
    prop::collection::vec(row, 0..20)
        .prop_map(|rows| format!("timestamp,tenant,resource,amount\n{}", rows.join("\n")))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if std::env::var_os("CI").is_some() { 2048 } else { 512 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_policy_parser_never_panics(yaml in mutated_policy()) {
        if let Err(e) = Policy::load_str(&yaml, "fuzz.yaml") {
            prop_assert!(!e.problems.is_empty());
            prop_assert!(e.to_string().starts_with("fuzz.yaml: "));
        }
    }

    #[test]
    fn the_policy_parser_never_panics_on_any_text(yaml in ".{0,200}") {
        let _ = Policy::load_str(&yaml, "fuzz.yaml");
    }

    #[test]
    fn the_trace_parser_never_panics(csv in trace_text(), raw in prop::collection::vec(any::<u8>(), 0..200)) {
        let policy = Policy::load_str(EMBEDDED_POLICY, "p").unwrap();
        if let Err(e) = Trace::read(csv.as_bytes(), "fuzz.csv", &policy) {
            prop_assert!(e.to_string().starts_with("fuzz.csv:"));
        }
        let _ = Trace::read(raw.as_slice(), "raw.csv", &policy);
    }
}
