//! Keyboard-wedge decoding: HID boot-keyboard reports and evdev key events become reads.
//!
//! A wedge reader "types" the badge and ends it with Enter (readers.md 2.2). Both decoders
//! are pure: they take the bytes or events plus the current time in milliseconds and return
//! what was completed. A read that stops before its terminator for longer than the
//! inter-key timeout is dropped as a half read, so a card pulled away mid-read never joins
//! the next one.
//!
//! Boot reports (`[modifiers][reserved][key1..key6]`, readers.md 2.1) are diffed: a key is
//! pressed when its usage is in this report and was not in the previous one, so two equal
//! digits in a row need a report without that usage in between. A report carrying the error
//! usages 01-03 (ErrorRollOver, POSTFail, ErrorUndefined) says nothing about which keys are
//! down; it is skipped and the previous state kept, so keys still held after the rollover are
//! not pressed twice.

/// Longest read kept; anything longer is discarded up to its terminator.
pub const MAX_READ_CHARS: usize = 64;

/// Default inter-key timeout: a wedge types a whole badge in well under this.
pub const DEFAULT_KEY_TIMEOUT_MS: u64 = 500;

/// What a decoder completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WedgeOutput {
    /// A whole read, terminator excluded, as typed (letters keep their case).
    Read(String),
    /// Characters arrived, then nothing for the timeout: the read was dropped.
    HalfRead {
        /// How many characters were dropped (never the characters themselves).
        n_chars: usize,
    },
    /// More than [`MAX_READ_CHARS`] characters before a terminator: the read was dropped.
    TooLong,
}

impl WedgeOutput {
    /// The reason shown for a dropped read, free of badge characters.
    pub fn reason(&self) -> Option<String> {
        match self {
            WedgeOutput::Read(_) => None,
            WedgeOutput::HalfRead { n_chars } => Some(format!(
                "half a read ({n_chars} characters, then no Enter): present the badge again and hold it still"
            )),
            WedgeOutput::TooLong => Some(format!(
                "a read longer than {MAX_READ_CHARS} characters was dropped: check the reader's output settings"
            )),
        }
    }
}

/// Decodes 8-byte boot-keyboard input reports (HID usage page 07).
#[derive(Debug, Clone)]
pub struct BootKeyboardDecoder {
    previous: [u8; 6],
    line: LineAssembler,
}

impl BootKeyboardDecoder {
    /// A decoder that drops a half read after `key_timeout_ms` without keys.
    pub fn new(key_timeout_ms: u64) -> Self {
        BootKeyboardDecoder {
            previous: [0; 6],
            line: LineAssembler::new(key_timeout_ms),
        }
    }

    /// Feeds one input report received at `now_ms`. Reports that are not 8 bytes long are
    /// ignored.
    pub fn report(&mut self, report: &[u8], now_ms: u64) -> Vec<WedgeOutput> {
        let mut outputs = Vec::new();
        outputs.extend(self.line.expire(now_ms));
        let Ok(report) = <&[u8; 8]>::try_from(report) else {
            return outputs;
        };
        let keys = &report[2..8];
        if keys.iter().any(|&usage| (1..=3).contains(&usage)) {
            return outputs;
        }
        let modifiers = report[0];
        let shift = modifiers & (MOD_LEFT_SHIFT | MOD_RIGHT_SHIFT) != 0;
        let chording = modifiers & !(MOD_LEFT_SHIFT | MOD_RIGHT_SHIFT) != 0;
        for &usage in keys {
            if usage == 0 || self.previous.contains(&usage) {
                continue;
            }
            if chording {
                // Ctrl/Alt/GUI combinations are shortcuts, never badge characters.
                continue;
            }
            match hid_usage_key(usage, shift) {
                Some(Key::Char(c)) => outputs.extend(self.line.push(c, now_ms)),
                Some(Key::End) => outputs.extend(self.line.end()),
                None => {}
            }
        }
        self.previous.copy_from_slice(keys);
        outputs
    }

    /// Checks the inter-key timeout while no report arrives.
    pub fn tick(&mut self, now_ms: u64) -> Option<WedgeOutput> {
        self.line.expire(now_ms)
    }
}

/// Decodes Linux evdev key events (`EV_KEY`, value 1 press / 0 release / 2 autorepeat).
#[derive(Debug, Clone)]
pub struct EvdevKeyDecoder {
    left_shift: bool,
    right_shift: bool,
    held_chords: u8,
    line: LineAssembler,
}

impl EvdevKeyDecoder {
    /// A decoder that drops a half read after `key_timeout_ms` without keys.
    pub fn new(key_timeout_ms: u64) -> Self {
        EvdevKeyDecoder {
            left_shift: false,
            right_shift: false,
            held_chords: 0,
            line: LineAssembler::new(key_timeout_ms),
        }
    }

    /// Feeds one key event received at `now_ms`. Autorepeats are ignored: a reader never
    /// holds a key long enough for a real one.
    pub fn key(&mut self, code: u16, value: i32, now_ms: u64) -> Vec<WedgeOutput> {
        let mut outputs = Vec::new();
        outputs.extend(self.line.expire(now_ms));
        let pressed = match value {
            1 => true,
            0 => false,
            _ => return outputs,
        };
        match code {
            KEY_LEFTSHIFT => self.left_shift = pressed,
            KEY_RIGHTSHIFT => self.right_shift = pressed,
            _ if CHORD_KEYS.contains(&code) => {
                let bit = 1 << CHORD_KEYS.iter().position(|&k| k == code).unwrap_or(0);
                if pressed {
                    self.held_chords |= bit;
                } else {
                    self.held_chords &= !bit;
                }
            }
            _ if pressed && self.held_chords == 0 => {
                match evdev_key(code, self.left_shift || self.right_shift) {
                    Some(Key::Char(c)) => outputs.extend(self.line.push(c, now_ms)),
                    Some(Key::End) => outputs.extend(self.line.end()),
                    None => {}
                }
            }
            _ => {}
        }
        outputs
    }

    /// Checks the inter-key timeout while no event arrives.
    pub fn tick(&mut self, now_ms: u64) -> Option<WedgeOutput> {
        self.line.expire(now_ms)
    }
}

/// What one key means to a wedge read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Char(char),
    /// Enter, keypad Enter or Tab: the read is complete.
    End,
}

/// Collects characters until a terminator, dropping half reads after a timeout.
#[derive(Debug, Clone)]
struct LineAssembler {
    buffer: String,
    n_chars: usize,
    last_key_ms: u64,
    discarding: bool,
    timeout_ms: u64,
}

impl LineAssembler {
    fn new(timeout_ms: u64) -> Self {
        LineAssembler {
            buffer: String::new(),
            n_chars: 0,
            last_key_ms: 0,
            discarding: false,
            timeout_ms,
        }
    }

    fn expire(&mut self, now_ms: u64) -> Option<WedgeOutput> {
        let pending = self.n_chars > 0 || self.discarding;
        if !pending || now_ms.saturating_sub(self.last_key_ms) < self.timeout_ms {
            return None;
        }
        let n_chars = self.n_chars;
        let was_discarding = self.discarding;
        self.reset();
        if was_discarding {
            None
        } else {
            Some(WedgeOutput::HalfRead { n_chars })
        }
    }

    fn push(&mut self, c: char, now_ms: u64) -> Option<WedgeOutput> {
        self.last_key_ms = now_ms;
        if self.discarding {
            return None;
        }
        if self.n_chars == MAX_READ_CHARS {
            self.reset();
            self.discarding = true;
            return Some(WedgeOutput::TooLong);
        }
        self.buffer.push(c);
        self.n_chars += 1;
        None
    }

    fn end(&mut self) -> Option<WedgeOutput> {
        if self.discarding {
            self.reset();
            return None;
        }
        if self.n_chars == 0 {
            return None;
        }
        let read = std::mem::take(&mut self.buffer);
        self.reset();
        Some(WedgeOutput::Read(read))
    }

    fn reset(&mut self) {
        self.buffer.clear();
        self.n_chars = 0;
        self.discarding = false;
    }
}

const MOD_LEFT_SHIFT: u8 = 1 << 1;
const MOD_RIGHT_SHIFT: u8 = 1 << 5;

/// Maps a HID keyboard usage (page 07) to a wedge key.
fn hid_usage_key(usage: u8, shift: bool) -> Option<Key> {
    let letter = |base: u8| {
        let c = char::from(base);
        Key::Char(if shift { c.to_ascii_uppercase() } else { c })
    };
    Some(match usage {
        0x04..=0x1D => letter(b'a' + (usage - 0x04)),
        // Digits ignore Shift: a reader set up for AZERTY sends Shift with every digit.
        0x1E..=0x26 => Key::Char(char::from(b'1' + (usage - 0x1E))),
        0x27 => Key::Char('0'),
        0x28 | 0x58 | 0x2B => Key::End,
        0x2C => Key::Char(' '),
        0x2D if !shift => Key::Char('-'),
        0x33 => Key::Char(if shift { ':' } else { ';' }),
        0x36 if !shift => Key::Char(','),
        0x37 if !shift => Key::Char('.'),
        0x38 if !shift => Key::Char('/'),
        0x56 => Key::Char('-'),
        0x59..=0x61 => Key::Char(char::from(b'1' + (usage - 0x59))),
        0x62 => Key::Char('0'),
        0x63 => Key::Char('.'),
        _ => return None,
    })
}

// Linux input-event-codes.h (readers.md 2.1).
const KEY_TAB: u16 = 15;
const KEY_ENTER: u16 = 28;
const KEY_LEFTSHIFT: u16 = 42;
const KEY_RIGHTSHIFT: u16 = 54;
const KEY_KPENTER: u16 = 96;
/// Ctrl, Alt and Meta on both sides: while one is held, keys are shortcuts.
const CHORD_KEYS: [u16; 6] = [29, 97, 56, 100, 125, 126];

/// Maps a Linux `KEY_*` code to a wedge key.
fn evdev_key(code: u16, shift: bool) -> Option<Key> {
    const TOP_ROW: &[u8; 10] = b"qwertyuiop";
    const HOME_ROW: &[u8; 9] = b"asdfghjkl";
    const BOTTOM_ROW: &[u8; 7] = b"zxcvbnm";
    let letter = |c: u8| {
        let c = char::from(c);
        Key::Char(if shift { c.to_ascii_uppercase() } else { c })
    };
    let index = usize::from;
    Some(match code {
        // Digits ignore Shift, as in `hid_usage_key`.
        2..=10 => Key::Char(char::from(b'1' + (code - 2) as u8)),
        11 => Key::Char('0'),
        12 if !shift => Key::Char('-'),
        16..=25 => letter(TOP_ROW[index(code - 16)]),
        30..=38 => letter(HOME_ROW[index(code - 30)]),
        44..=50 => letter(BOTTOM_ROW[index(code - 44)]),
        39 => Key::Char(if shift { ':' } else { ';' }),
        51 if !shift => Key::Char(','),
        52 if !shift => Key::Char('.'),
        53 if !shift => Key::Char('/'),
        57 => Key::Char(' '),
        KEY_ENTER | KEY_KPENTER | KEY_TAB => Key::End,
        71 => Key::Char('7'),
        72 => Key::Char('8'),
        73 => Key::Char('9'),
        74 => Key::Char('-'),
        75 => Key::Char('4'),
        76 => Key::Char('5'),
        77 => Key::Char('6'),
        79 => Key::Char('1'),
        80 => Key::Char('2'),
        81 => Key::Char('3'),
        82 => Key::Char('0'),
        83 => Key::Char('.'),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hid_letter_and_digit_maps() {
        let typed: String = (0x04..=0x27)
            .filter_map(|usage| match hid_usage_key(usage, false) {
                Some(Key::Char(c)) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(typed, "abcdefghijklmnopqrstuvwxyz1234567890");
    }

    #[test]
    fn evdev_letters_follow_the_keyboard_rows() {
        assert_eq!(evdev_key(30, true), Some(Key::Char('A')));
        assert_eq!(evdev_key(18, false), Some(Key::Char('e')));
        assert_eq!(evdev_key(32, true), Some(Key::Char('D')));
        assert_eq!(evdev_key(48, true), Some(Key::Char('B')));
        assert_eq!(evdev_key(46, false), Some(Key::Char('c')));
        assert_eq!(evdev_key(33, false), Some(Key::Char('f')));
    }
}
