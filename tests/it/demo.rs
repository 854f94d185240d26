//! The headless demo is the main job's smoke test: the real binary plays a scripted shift
//! against the built-in simulator and must report check-outs, check-ins, Workspace ONE
//! calls and no failures.

use std::process::Command;

use crate::support::station::bin;

#[test]
fn headless_demo_plays_a_shift_without_failures() {
    let output = Command::new(bin())
        .args(["demo", "--headless", "--taps", "12"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let figure = |label: &str| -> u32 {
        stdout
            .lines()
            .find(|line| line.trim_start().starts_with(label))
            .and_then(|line| line.split_whitespace().last())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {label} in {stdout}"))
    };
    assert_eq!(figure("taps:"), 12);
    assert!(figure("check-outs:") >= 8, "{stdout}");
    assert_eq!(
        figure("check-ins:"),
        figure("check-outs:"),
        "every phone taken came back: {stdout}"
    );
    assert_eq!(figure("refused (expected):"), 2);
    assert!(figure("Workspace ONE calls:") > 0);
    assert!(figure("enrolment changes:") >= 2 * 6, "{stdout}");
    assert_eq!(figure("failures:"), 0, "{stdout}");
}
