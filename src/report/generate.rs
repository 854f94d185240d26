//! A month of synthetic audit for the report benchmark: check-outs clustered at shift
//! changes (07:00, 15:00, 19:00), most loans a shift long, some short, phones handed out
//! first-free, and a refusal whenever none is in. Deterministic for a given seed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::checkout::AuditEntry;
use crate::domain::{DeviceKey, SlotLabel, Timestamp, Username};
use crate::report::NONE_READY_DETAILS;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// splitmix64: enough randomness for a benchmark, no dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What was generated.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    /// The audit rows, oldest first (`checkout`, `checkin`, `tap-refused`).
    pub entries: Vec<AuditEntry>,
    /// Loans made.
    pub n_loans: usize,
    /// Taps refused because no phone was in.
    pub n_refusals: usize,
}

/// `n_loans` loans over `n_phones` phones, starting at `start_ms` (a midnight), spread
/// over as many days as it takes at ~`n_loans / 30` a day.
pub fn month(seed: u64, start_ms: i64, n_loans: usize, n_phones: usize) -> Generated {
    let mut random = Random(seed);
    let per_day = (n_loans / 30).max(1) as u64;
    // A check-out's minute of the day: mostly around shift changes.
    let peaks = [(7 * 60, 45u64), (15 * 60, 20), (19 * 60, 35)];
    let mut starts = Vec::with_capacity(n_loans + n_loans / 4);
    let mut day = 0i64;
    while starts.len() < n_loans + n_loans / 4 {
        for _ in 0..per_day + per_day / 4 {
            let roll = random.below(100);
            let minute = match roll {
                0..=79 => {
                    let (centre, _) = {
                        let pick = random.below(100);
                        let mut acc = 0;
                        let mut chosen = peaks[0];
                        for peak in peaks {
                            acc += peak.1;
                            if pick < acc {
                                chosen = peak;
                                break;
                            }
                        }
                        chosen
                    };
                    // Within an hour before to 40 minutes after the change.
                    centre - 60 + random.below(100) as i64
                }
                _ => random.below(24 * 60) as i64,
            };
            let at = start_ms + day * DAY_MS + minute * MINUTE_MS + random.below(60_000) as i64;
            starts.push(at);
        }
        day += 1;
    }
    starts.sort_unstable();
    // Free phones by the time they come back; all in at the start.
    let mut back: BinaryHeap<Reverse<(i64, usize)>> = (0..n_phones)
        .map(|phone| Reverse((start_ms, phone)))
        .collect();
    let mut events: Vec<(i64, u8, AuditEntry)> = Vec::new();
    let mut generated = Generated::default();
    for at in starts {
        if generated.n_loans == n_loans {
            break;
        }
        let username = Username::new(format!("nurse{:03}", random.below(250)));
        let Some(Reverse((free_at, phone))) = back.peek().copied() else {
            break;
        };
        if free_at > at {
            generated.n_refusals += 1;
            events.push((
                at,
                2,
                entry(
                    at,
                    "tap-refused",
                    Some(&username),
                    None,
                    NONE_READY_DETAILS[0],
                ),
            ));
            continue;
        }
        back.pop();
        let length = if random.below(100) < 65 {
            11 * HOUR_MS + random.below(90) as i64 * MINUTE_MS
        } else {
            20 * MINUTE_MS + random.below(4 * 60) as i64 * MINUTE_MS
        };
        // A few phones come back a day late (overdue).
        let length = if random.below(200) == 0 {
            length + DAY_MS
        } else {
            length
        };
        let device = DeviceKey::android(&format!("R58M{phone:05}"));
        let slot = SlotLabel::new((phone + 1).to_string());
        let mut out = entry(
            at,
            "checkout",
            Some(&username),
            Some(&device),
            "took a phone",
        );
        out.slot = Some(slot.clone());
        let mut back_entry = entry(
            at + length,
            "checkin",
            Some(&username),
            Some(&device),
            "returned",
        );
        back_entry.slot = Some(slot);
        events.push((at, 1, out));
        events.push((at + length, 0, back_entry));
        back.push(Reverse((at + length, phone)));
        generated.n_loans += 1;
    }
    events.sort_by_key(|(at, order, _)| (*at, *order));
    generated.entries = events.into_iter().map(|(_, _, entry)| entry).collect();
    generated
}

fn entry(
    at: i64,
    kind: &str,
    username: Option<&Username>,
    device: Option<&DeviceKey>,
    detail: &str,
) -> AuditEntry {
    AuditEntry {
        at: Timestamp(at),
        kind: crate::checkout::AuditKind::from_name(kind),
        reader: None,
        badge: None,
        username: username.cloned(),
        device: device.cloned(),
        slot: None,
        detail: detail.to_string(),
    }
}
