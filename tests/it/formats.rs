//! Badge format rules and Wiegand layouts: the worked examples of readers.md 3.1-3.3 as a
//! table, the modifiers, what `readers --watch` shows, config-load errors, and property tests
//! (numbers survive rendering and parsing back; Wiegand encode/decode round-trips; no input
//! makes a rule or a decoder panic).

use std::path::Path;

use badgedock::badges::format::{hex_upper, renderings, FormatRule};
use badgedock::badges::wiegand::{self, WiegandCard, WiegandError, WiegandFormat};
use badgedock::badges::RawBadge;
use badgedock::config::{self, LoadEnv};
use proptest::prelude::*;

fn uid(hex: &str) -> RawBadge {
    RawBadge::Uid(
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect(),
    )
}

fn pacs(format: WiegandFormat, facility: u32, card: u64) -> RawBadge {
    WiegandCard {
        format,
        facility,
        card,
    }
    .to_raw_badge()
    .unwrap()
}

fn text(typed: &str) -> RawBadge {
    RawBadge::Text(typed.to_string())
}

fn apply(rule: &str, raw: &RawBadge) -> Result<String, String> {
    let rule = FormatRule::parse(rule).map_err(|err| format!("parse: {err}"))?;
    rule.apply(raw)
        .map(|badge| badge.expose().to_string())
        .map_err(|err| err.to_string())
}

#[test]
fn worked_examples_and_modifiers() {
    let deadbeef = uid("DEADBEEF");
    let seven = uid("04A1B2C3D4E5F6");
    let ten = uid("0102030405060708090A");
    let h10301 = pacs(WiegandFormat::H10301, 1, 12345);
    let cases: Vec<(RawBadge, &str, &str)> = vec![
        // readers.md 3.2, DE AD BE EF.
        (deadbeef.clone(), "hex", "DEADBEEF"),
        (deadbeef.clone(), "hex-reversed", "EFBEADDE"),
        (deadbeef.clone(), "decimal", "3735928559"),
        (deadbeef.clone(), "decimal-reversed", "4022250974"),
        // readers.md 3.2, the 7-byte UID that overflows 32 bits.
        (seven.clone(), "hex", "04A1B2C3D4E5F6"),
        (seven.clone(), "decimal", "1303689068602870"),
        (seven.clone(), "decimal-reversed", "69495546249912580"),
        // A 10-byte UID is 80 bits: u128 arithmetic.
        (ten.clone(), "decimal", "4759477275222530853130"),
        (ten.clone(), "decimal-reversed", "47390263963055590408705"),
        // readers.md 3.1, H10301 FC 1 CN 12345 = 0x2026073.
        (h10301.clone(), "hex", "2026073"),
        (h10301.clone(), "decimal", "33710195"),
        (h10301.clone(), "wiegand26", "1:12345"),
        (h10301.clone(), "h10301", "1:12345"),
        (h10301.clone(), "wiegand", "1:12345"),
        (h10301.clone(), "h10301|cn", "12345"),
        (h10301.clone(), "h10301 | fc-cn:/", "1/12345"),
        (h10301.clone(), "h10301|packed", "77881"),
        (h10301.clone(), "h10301|cn|pad:8", "00012345"),
        // Modifiers, left to right, joined with | or +.
        (deadbeef.clone(), "decimal-reversed|pad:12", "004022250974"),
        (deadbeef.clone(), "decimal|pad:4", "3735928559"),
        (seven.clone(), "hex|strip-prefix:04", "A1B2C3D4E5F6"),
        (seven.clone(), "hex+strip-prefix:a1", "04A1B2C3D4E5F6"),
        (seven.clone(), "hex|last:8", "C3D4E5F6"),
        (seven.clone(), "hex|strip-prefix:04|last:4|pad:6", "00E5F6"),
        (deadbeef.clone(), "HEX-Reversed", "EFBEADDE"),
        // readers.md 3.3: the printed card "0007625328 116,23152".
        (
            pacs(WiegandFormat::H10301, 116, 23152),
            "h10301|packed|pad:10",
            "0007625328",
        ),
        (
            pacs(WiegandFormat::H10301, 116, 23152),
            "h10301|fc-cn:,",
            "116,23152",
        ),
        // readers.md 3.3: the fob printed 5280984 and the card printed 080:38104.
        (
            pacs(WiegandFormat::H10301, 80, 38104),
            "wiegand|packed",
            "5280984",
        ),
        (
            pacs(WiegandFormat::H10301, 80, 38104),
            "wiegand|fc-cn",
            "80:38104",
        ),
        (
            pacs(WiegandFormat::Corporate1000, 1234, 567_890),
            "corporate1000",
            "1234:567890",
        ),
        (
            pacs(WiegandFormat::Corporate1000, 4095, 1_048_575),
            "c1k35|cn",
            "1048575",
        ),
        (
            pacs(WiegandFormat::H10304, 65535, 524_287),
            "h10304",
            "65535:524287",
        ),
        (
            pacs(WiegandFormat::H10304, 7, 99),
            "wiegand37|fc-cn:-",
            "7-99",
        ),
        // Wedge text: as typed, trimmed, upper-case; PaperCut's hex2dec; TimeIPS' plain value.
        (text("  0012ab\n"), "text", "0012AB"),
        (text("0012ab"), "text|strip-prefix:00", "12AB"),
        (text("12ab"), "text|pad:10", "00000012AB"),
        (text("1:12345"), "text", "1:12345"),
        (text("946EBD28"), "decimal", "2490285352"),
        (text("000A1142"), "decimal", "659778"),
        (text("deadbeef"), "hex", "DEADBEEF"),
        (text("DEADBEEF"), "hex-reversed", "EFBEADDE"),
        // An odd number of hex digits is read as a number with a leading zero.
        (text("abc"), "hex-reversed", "BC0A"),
    ];
    let mut failures = Vec::new();
    for (raw, rule, expected) in &cases {
        match apply(rule, raw) {
            Ok(got) if got == *expected => {}
            other => failures.push(format!(
                "{rule:?} on {raw:?}: expected {expected:?}, got {other:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn h10301_frame_is_the_documented_bits() {
    let frame = wiegand::encode(WiegandFormat::H10301, 1, 12345).unwrap();
    assert_eq!(frame, 0x202_6073);
    assert_eq!(format!("{frame:026b}"), "10000000100110000001110011");
}

#[test]
fn rules_refuse_reads_they_cannot_render_without_leaking_the_number() {
    let cases: Vec<(RawBadge, &str, &str)> = vec![
        (uid("DEADBEEF"), "h10301", "card UID"),
        (text("DEADBEEF"), "wiegand", "typed text"),
        (text("1:12345"), "hex", "not hex digits"),
        (uid(&"AB".repeat(17)), "decimal", "too long"),
        (
            pacs(WiegandFormat::H10301, 1, 12345),
            "h10304",
            "needs 37 bits",
        ),
        (
            RawBadge::Pacs {
                bits: vec![0xFF; 4],
                bit_len: 30,
            },
            "wiegand",
            "no supported Wiegand layout has 30 bits",
        ),
        (
            RawBadge::Pacs {
                bits: vec![0x80],
                bit_len: 26,
            },
            "h10301",
            "carries only 1 bytes",
        ),
        (text("0000"), "text|strip-prefix:0000", "empty"),
        (text("   "), "text", "empty"),
    ];
    let mut failures = Vec::new();
    for (raw, rule, expected) in &cases {
        match apply(rule, raw) {
            Err(message) if message.contains(expected) => {
                if message.contains("DEADBEEF") || message.contains("12345") {
                    failures.push(format!("{rule:?}: the error shows the badge: {message}"));
                }
            }
            other => failures.push(format!(
                "{rule:?} on {raw:?}: expected an error with {expected:?}, got {other:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parity_errors_say_which_bit_and_what_to_do() {
    let frame = wiegand::encode(WiegandFormat::H10301, 1, 12345).unwrap() ^ 1;
    let raw = RawBadge::Pacs {
        bits: wiegand::bits_from_value(u128::from(frame), 26),
        bit_len: 26,
    };
    let message = apply("h10301", &raw).unwrap_err();
    assert!(message.contains("odd parity bit 26"), "{message}");
    assert!(message.contains("present the card again"), "{message}");
    assert!(!message.contains("12345"), "{message}");

    let frame = wiegand::encode(WiegandFormat::Corporate1000, 1234, 567_890).unwrap() ^ (1 << 34);
    assert_eq!(
        wiegand::decode_frame(WiegandFormat::Corporate1000, frame),
        Err(WiegandError::Parity {
            format: WiegandFormat::Corporate1000,
            which: "odd parity bit 1 over the whole frame"
        })
    );
}

#[test]
fn rule_text_round_trips_and_parse_errors_list_the_grammar() {
    let rule = FormatRule::parse("decimal-reversed|pad:10").unwrap();
    assert_eq!(rule.as_str(), "decimal-reversed|pad:10");
    assert!(!rule.is_wiegand());
    assert!(FormatRule::parse("h10301|cn").unwrap().is_wiegand());
    for (bad, problem) in [
        ("octal", "\"octal\" is not a base rule"),
        ("", "it is empty"),
        ("hex|pad", "pad needs a width"),
        ("hex|pad:0", "from 1 to 64"),
        ("hex|last:65", "from 1 to 64"),
        ("hex|pad:ten", "from 1 to 64"),
        ("hex|cn", "only applies to Wiegand rules"),
        ("decimal|fc-cn", "only applies to Wiegand rules"),
        ("h10301|cn|fc-cn", "at most one of fc-cn, cn and packed"),
        ("h10301|fc-cn:", "needs a separator"),
        ("hex|strip-prefix:", "strip-prefix needs the prefix"),
        ("hex||pad:4", "missing between two separators"),
        ("hex|upper", "\"upper\" is not a modifier"),
    ] {
        let err = FormatRule::parse(bad).expect_err(bad);
        let message = err.to_string();
        assert!(message.contains(problem), "{bad:?}: {message}");
        for choice in [
            "hex-reversed",
            "decimal-reversed",
            "h10301",
            "corporate1000",
            "h10304",
            "pad:N",
            "strip-prefix:S",
            "last:N",
            "fc-cn",
        ] {
            assert!(
                message.contains(choice),
                "{bad:?}: the error does not list {choice}: {message}"
            );
        }
    }
}

#[test]
fn config_load_reports_a_bad_format_with_key_line_and_choices() {
    let text = "[station]\nname = \"4 West\"\n\n[[reader]]\nname = \"door\"\nkind = \"wedge\"\nmatch = \"0c27:3bfa\"\nformat = \"decimal|pad:99\"\n";
    let err = config::parse(
        Path::new("/etc/badgedock/test.toml"),
        text,
        &LoadEnv::default(),
    )
    .unwrap_err();
    let problem = err
        .problems
        .iter()
        .find(|p| p.key == "reader[0].format")
        .expect("a format problem");
    assert_eq!(problem.line, Some(8));
    assert!(
        problem.message.contains("from 1 to 64") && problem.message.contains("decimal-reversed"),
        "{}",
        problem.message
    );

    let good = text.replace("decimal|pad:99", "h10301|cn|pad:8");
    let config = config::parse(
        Path::new("/etc/badgedock/test.toml"),
        &good,
        &LoadEnv::default(),
    )
    .unwrap();
    assert_eq!(config.readers[0].format.as_str(), "h10301|cn|pad:8");
}

#[test]
fn renderings_for_readers_watch() {
    let lines = |raw: &RawBadge| -> Vec<(String, String)> { renderings(raw) };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        lines(&uid("DEADBEEF")),
        pairs(&[
            ("hex", "DEADBEEF"),
            ("hex-reversed", "EFBEADDE"),
            ("decimal", "3735928559"),
            ("decimal-reversed", "4022250974"),
        ])
    );
    assert_eq!(
        lines(&pacs(WiegandFormat::H10301, 1, 12345)),
        pairs(&[
            ("bit-length", "26"),
            ("hex", "2026073"),
            ("hex-reversed", "73600202"),
            ("decimal", "33710195"),
            ("decimal-reversed", "1935671810"),
            ("h10301", "1:12345"),
            ("h10301|cn", "12345"),
            ("h10301|packed", "77881"),
        ])
    );
    assert_eq!(
        lines(&text("0012ab")),
        pairs(&[
            ("text", "0012AB"),
            ("hex", "0012AB"),
            ("hex-reversed", "AB1200"),
            ("decimal", "4779"),
            ("decimal-reversed", "11211264"),
        ])
    );
    // Not hex: only the text line.
    assert_eq!(lines(&text("1:12345")), pairs(&[("text", "1:12345")]));
    // A Wiegand length with bad parity shows why; an unknown length shows no FC/CN at all.
    let broken = wiegand::encode(WiegandFormat::H10301, 1, 12345).unwrap() ^ 2;
    let broken = RawBadge::Pacs {
        bits: wiegand::bits_from_value(u128::from(broken), 26),
        bit_len: 26,
    };
    let shown = lines(&broken);
    let h10301 = shown
        .iter()
        .find(|(label, _)| label == "h10301")
        .expect("an h10301 line");
    assert!(
        h10301
            .1
            .starts_with("(not valid: H10301 (26-bit) parity check failed"),
        "{}",
        h10301.1
    );
    assert!(!shown.iter().any(|(label, _)| label.contains('|')));
    let odd = RawBadge::Pacs {
        bits: vec![0xAB, 0xCD, 0xEF, 0xFC],
        bit_len: 30,
    };
    let labels: Vec<String> = lines(&odd).into_iter().map(|(label, _)| label).collect();
    assert_eq!(
        labels,
        [
            "bit-length",
            "hex",
            "hex-reversed",
            "decimal",
            "decimal-reversed"
        ]
    );
}

/// Minimal big-endian bytes of a value (at least one byte).
fn be_bytes(value: u128) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(15);
    bytes[first..].to_vec()
}

fn any_format() -> impl Strategy<Value = WiegandFormat> {
    prop_oneof![
        Just(WiegandFormat::H10301),
        Just(WiegandFormat::Corporate1000),
        Just(WiegandFormat::H10304),
    ]
}

fn any_raw() -> impl Strategy<Value = RawBadge> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(RawBadge::Uid),
        (proptest::collection::vec(any::<u8>(), 0..24), 0u32..200)
            .prop_map(|(bits, bit_len)| RawBadge::Pacs { bits, bit_len }),
        ".{0,40}".prop_map(RawBadge::Text),
        "[0-9a-fA-F ]{0,40}".prop_map(RawBadge::Text),
    ]
}

proptest! {
    #[test]
    fn decimal_renderings_parse_back_to_the_bytes(value in any::<u128>()) {
        let bytes = be_bytes(value);
        let raw = RawBadge::Uid(bytes.clone());
        let decimal: u128 = apply("decimal", &raw).unwrap().parse().unwrap();
        prop_assert_eq!(decimal, value);
        let reversed_value = bytes.iter().rev().fold(0u128, |acc, &byte| acc << 8 | u128::from(byte));
        let decimal_reversed: u128 = apply("decimal-reversed", &raw).unwrap().parse().unwrap();
        prop_assert_eq!(decimal_reversed, reversed_value);
        // The hex rendering keeps every byte, leading zeros included.
        prop_assert_eq!(apply("hex", &raw).unwrap(), hex_upper(&bytes));
    }

    #[test]
    fn hex_renderings_parse_back(bytes in proptest::collection::vec(any::<u8>(), 1..=16)) {
        let raw = RawBadge::Uid(bytes.clone());
        let hex = apply("hex", &raw).unwrap();
        let parsed: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        prop_assert_eq!(&parsed, &bytes);
        // Wedge text of those hex digits renders like the UID.
        let typed = RawBadge::Text(hex.to_lowercase());
        for rule in ["hex", "hex-reversed", "decimal", "decimal-reversed"] {
            prop_assert_eq!(apply(rule, &typed), apply(rule, &raw), "rule {}", rule);
        }
        let padded = apply("hex|pad:40", &raw).unwrap();
        prop_assert_eq!(padded.len(), 40);
        prop_assert_eq!(padded.trim_start_matches('0'), hex.trim_start_matches('0'));
    }

    #[test]
    fn wiegand_encode_then_decode_gives_the_card_back(format in any_format(), facility in any::<u32>(), card in any::<u64>()) {
        let facility = facility % (format.max_facility() + 1);
        let card = card % (format.max_card() + 1);
        let frame = wiegand::encode(format, facility, card).unwrap();
        prop_assert!(frame < 1u64 << format.bit_len());
        let decoded = wiegand::decode_frame(format, frame).unwrap();
        prop_assert_eq!(decoded, WiegandCard { format, facility, card });
        let raw = WiegandCard { format, facility, card }.to_raw_badge().unwrap();
        prop_assert_eq!(apply("wiegand", &raw).unwrap(), format!("{facility}:{card}"));
        prop_assert_eq!(apply(format.rule_name(), &raw).unwrap(), format!("{facility}:{card}"));
        let packed: u64 = apply("wiegand|packed", &raw).unwrap().parse().unwrap();
        prop_assert_eq!(packed, u64::from(facility) << format.card_bits() | card);
    }

    #[test]
    fn out_of_range_cards_are_refused(format in any_format(), facility in any::<u32>(), card in any::<u64>()) {
        let result = wiegand::encode(format, facility, card);
        let fits = facility <= format.max_facility() && card <= format.max_card();
        prop_assert_eq!(result.is_ok(), fits);
    }

    #[test]
    fn arbitrary_bits_never_panic_a_wiegand_decoder(bits in proptest::collection::vec(any::<u8>(), 0..24), bit_len in any::<u32>(), frame in any::<u64>()) {
        let _ = wiegand::decode_any(&bits, bit_len);
        for format in WiegandFormat::ALL {
            let _ = wiegand::decode(format, &bits, bit_len);
            let _ = wiegand::decode(format, &bits, format.bit_len());
            if let Ok(card) = wiegand::decode_frame(format, frame) {
                // Whatever decodes re-encodes to the same frame.
                prop_assert_eq!(wiegand::encode(format, card.facility, card.card).unwrap(), frame & ((1u64 << format.bit_len()) - 1));
            }
        }
        let _ = wiegand::value_from_bits(&bits, bit_len);
        let _ = wiegand::bits_from_value(u128::from(frame), bit_len);
    }

    #[test]
    fn arbitrary_rule_strings_never_panic_the_parser(rule in ".{0,40}", raw in any_raw()) {
        if let Ok(parsed) = FormatRule::parse(&rule) {
            let _ = parsed.apply(&raw);
        }
    }

    #[test]
    fn grammar_shaped_rules_never_panic(
        base in "(hex|hex-reversed|decimal|decimal-reversed|text|wiegand|h10301|corporate1000|h10304|bogus)",
        modifiers in proptest::collection::vec("(pad:[0-9]{1,3}|last:[0-9]{1,3}|strip-prefix:[0-9A-F]{0,4}|fc-cn(:.)?|cn|packed|x)", 0..4),
        raw in any_raw(),
    ) {
        let rule = std::iter::once(base).chain(modifiers).collect::<Vec<_>>().join("|");
        if let Ok(parsed) = FormatRule::parse(&rule) {
            prop_assert_eq!(parsed.as_str(), rule.as_str());
            if let Ok(badge) = parsed.apply(&raw) {
                prop_assert!(!badge.expose().is_empty());
            }
        }
        let _ = renderings(&raw);
    }
}
