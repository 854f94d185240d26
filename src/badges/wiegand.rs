//! Wiegand PACS layouts with parity checks: H10301 (26-bit), Corporate 1000 (35-bit) and
//! H10304 (37-bit).
//!
//! A PACS frame is handled as an integer whose most significant bit is the first bit
//! transmitted ("bit 1" in the layout tables of readers.md 3.1, taken from
//! RfidResearchGroup/proxmark3:client/src/wiegand_formats.c). [`decode`] checks every parity
//! bit and extracts the facility code and card number; [`encode`] builds a frame with correct
//! parity, for the property tests and for the simulated readers of `badgedock demo`.
//! Errors never carry the card number: it is part of a badge identity (invariant 5).

use std::fmt;

use thiserror::Error;

use crate::badges::RawBadge;

/// A Wiegand layout this crate can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WiegandFormat {
    /// HID H10301, 26 bits: even parity, 8-bit facility, 16-bit card number, odd parity.
    H10301,
    /// HID Corporate 1000, 35 bits: three parity bits, 12-bit company id, 20-bit card number.
    Corporate1000,
    /// HID H10304, 37 bits: even parity, 16-bit facility, 19-bit card number, odd parity.
    H10304,
}

impl WiegandFormat {
    /// Every supported layout, shortest first.
    pub const ALL: [WiegandFormat; 3] = [
        WiegandFormat::H10301,
        WiegandFormat::Corporate1000,
        WiegandFormat::H10304,
    ];

    /// The frame length, parity bits included.
    pub fn bit_len(self) -> u32 {
        match self {
            WiegandFormat::H10301 => 26,
            WiegandFormat::Corporate1000 => 35,
            WiegandFormat::H10304 => 37,
        }
    }

    /// The layout with this frame length, if one is supported.
    pub fn for_bit_len(bit_len: u32) -> Option<WiegandFormat> {
        WiegandFormat::ALL
            .into_iter()
            .find(|format| format.bit_len() == bit_len)
    }

    /// The name used in format rules (`h10301`, `corporate1000`, `h10304`).
    pub fn rule_name(self) -> &'static str {
        match self {
            WiegandFormat::H10301 => "h10301",
            WiegandFormat::Corporate1000 => "corporate1000",
            WiegandFormat::H10304 => "h10304",
        }
    }

    /// Width of the facility code (company id for Corporate 1000) in bits.
    pub fn facility_bits(self) -> u32 {
        match self {
            WiegandFormat::H10301 => 8,
            WiegandFormat::Corporate1000 => 12,
            WiegandFormat::H10304 => 16,
        }
    }

    /// Width of the card number in bits.
    pub fn card_bits(self) -> u32 {
        match self {
            WiegandFormat::H10301 => 16,
            WiegandFormat::Corporate1000 => 20,
            WiegandFormat::H10304 => 19,
        }
    }

    /// The largest facility code the layout can carry.
    pub fn max_facility(self) -> u32 {
        (1u32 << self.facility_bits()) - 1
    }

    /// The largest card number the layout can carry.
    pub fn max_card(self) -> u64 {
        (1u64 << self.card_bits()) - 1
    }

    /// Parity bits before and after the data, as an RF IDeas reader is configured to strip
    /// them (`iLeadParityBitCnt`, `iTrailParityBitCnt`; readers.md 2.3).
    pub fn parity_bits(self) -> (u32, u32) {
        match self {
            WiegandFormat::H10301 => (1, 1),
            WiegandFormat::Corporate1000 => (2, 1),
            WiegandFormat::H10304 => (1, 1),
        }
    }

    /// Position (1-based, in transmission order) of the first facility-code bit.
    fn facility_start(self) -> u32 {
        match self {
            WiegandFormat::H10301 | WiegandFormat::H10304 => 2,
            WiegandFormat::Corporate1000 => 3,
        }
    }
}

impl fmt::Display for WiegandFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WiegandFormat::H10301 => "H10301 (26-bit)",
            WiegandFormat::Corporate1000 => "Corporate 1000 (35-bit)",
            WiegandFormat::H10304 => "H10304 (37-bit)",
        })
    }
}

/// A decoded (or to-be-encoded) Wiegand credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WiegandCard {
    /// The layout.
    pub format: WiegandFormat,
    /// Facility code (Corporate 1000: company id).
    pub facility: u32,
    /// Card number.
    pub card: u64,
}

impl WiegandCard {
    /// The frame with correct parity, as an integer (first transmitted bit most significant).
    pub fn frame(&self) -> Result<u64, WiegandError> {
        encode(self.format, self.facility, self.card)
    }

    /// The frame as a PACS read, the way a reader that keeps parity bits delivers it.
    pub fn to_raw_badge(&self) -> Result<RawBadge, WiegandError> {
        let frame = self.frame()?;
        let bit_len = self.format.bit_len();
        Ok(RawBadge::Pacs {
            bits: bits_from_value(u128::from(frame), bit_len),
            bit_len,
        })
    }
}

/// Why PACS bits are not a valid card of the expected layout.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WiegandError {
    /// The frame length does not match the layout the rule names.
    #[error("{format} needs {expected} bits but the reader delivered {actual}: use the rule for {actual}-bit cards or check the reader's parity-stripping settings")]
    WrongLength {
        /// The layout asked for.
        format: WiegandFormat,
        /// Its length.
        expected: u32,
        /// What was read.
        actual: u32,
    },
    /// No supported layout has this length.
    #[error("no supported Wiegand layout has {0} bits (26 = H10301, 35 = Corporate 1000, 37 = H10304): use a hex or decimal rule for this card")]
    UnknownLength(u32),
    /// The bit count claims more bits than the bytes carry.
    #[error("the read claims {bit_len} bits but carries only {n_bytes} bytes")]
    Truncated {
        /// Claimed bit count.
        bit_len: u32,
        /// Bytes present.
        n_bytes: usize,
    },
    /// A parity bit is wrong: the card was misread, or the reader reorders or strips bits.
    #[error("{format} parity check failed ({which}): present the card again; if it keeps failing, check the reader's bit-order and parity settings")]
    Parity {
        /// The layout.
        format: WiegandFormat,
        /// Which parity bit failed.
        which: &'static str,
    },
    /// The facility code does not fit the layout (encoding only).
    #[error("the facility code does not fit in the {bits} bits of {format}")]
    FacilityOutOfRange {
        /// The layout.
        format: WiegandFormat,
        /// Its facility width.
        bits: u32,
    },
    /// The card number does not fit the layout (encoding only).
    #[error("the card number does not fit in the {bits} bits of {format}")]
    CardOutOfRange {
        /// The layout.
        format: WiegandFormat,
        /// Its card-number width.
        bits: u32,
    },
}

/// Decodes left-aligned PACS bits as `format`, checking every parity bit.
pub fn decode(
    format: WiegandFormat,
    bits: &[u8],
    bit_len: u32,
) -> Result<WiegandCard, WiegandError> {
    if bit_len != format.bit_len() {
        return Err(WiegandError::WrongLength {
            format,
            expected: format.bit_len(),
            actual: bit_len,
        });
    }
    let frame = value_from_bits(bits, bit_len).ok_or(WiegandError::Truncated {
        bit_len,
        n_bytes: bits.len(),
    })?;
    // bit_len is at most 37 here, so the frame fits in a u64.
    decode_frame(format, frame as u64)
}

/// Decodes left-aligned PACS bits with the layout their length implies.
pub fn decode_any(bits: &[u8], bit_len: u32) -> Result<WiegandCard, WiegandError> {
    let format = WiegandFormat::for_bit_len(bit_len).ok_or(WiegandError::UnknownLength(bit_len))?;
    decode(format, bits, bit_len)
}

/// Decodes a frame given as an integer (first transmitted bit most significant). Bits above
/// the layout's length are ignored.
pub fn decode_frame(format: WiegandFormat, frame: u64) -> Result<WiegandCard, WiegandError> {
    let len = format.bit_len();
    let frame = frame & mask(len);
    let parity_error = |which| Err(WiegandError::Parity { format, which });
    match format {
        WiegandFormat::H10301 => {
            // b1 makes b1..b13 even; b26 makes b14..b26 odd.
            if field(frame, len, 1, 13).count_ones() % 2 != 0 {
                return parity_error("even parity bit 1 over bits 2-13");
            }
            if field(frame, len, 14, 13).count_ones() % 2 != 1 {
                return parity_error("odd parity bit 26 over bits 14-25");
            }
        }
        WiegandFormat::H10304 => {
            // b1 makes b1..b19 even; b37 makes b19..b37 odd.
            if field(frame, len, 1, 19).count_ones() % 2 != 0 {
                return parity_error("even parity bit 1 over bits 2-19");
            }
            if field(frame, len, 19, 19).count_ones() % 2 != 1 {
                return parity_error("odd parity bit 37 over bits 19-36");
            }
        }
        WiegandFormat::Corporate1000 => {
            if (frame & C1K_EVEN_MASK_WITH_BIT).count_ones() % 2 != 0 {
                return parity_error("even parity bit 2");
            }
            if (frame & C1K_ODD_MASK_WITH_BIT).count_ones() % 2 != 1 {
                return parity_error("odd parity bit 35");
            }
            if frame.count_ones() % 2 != 1 {
                return parity_error("odd parity bit 1 over the whole frame");
            }
        }
    }
    Ok(WiegandCard {
        format,
        facility: field(frame, len, format.facility_start(), format.facility_bits()) as u32,
        card: field(
            frame,
            len,
            format.facility_start() + format.facility_bits(),
            format.card_bits(),
        ),
    })
}

/// Builds the frame of a card with correct parity bits.
pub fn encode(format: WiegandFormat, facility: u32, card: u64) -> Result<u64, WiegandError> {
    if facility > format.max_facility() {
        return Err(WiegandError::FacilityOutOfRange {
            format,
            bits: format.facility_bits(),
        });
    }
    if card > format.max_card() {
        return Err(WiegandError::CardOutOfRange {
            format,
            bits: format.card_bits(),
        });
    }
    let len = format.bit_len();
    let card_end = format.facility_start() + format.facility_bits() + format.card_bits() - 1;
    let data = (u64::from(facility) << format.card_bits() | card) << (len - card_end);
    let frame = match format {
        WiegandFormat::H10301 | WiegandFormat::H10304 => {
            let (lead_span, trail_start) = match format {
                WiegandFormat::H10301 => (13, 14),
                _ => (19, 19),
            };
            let lead = u64::from(field(data, len, 1, lead_span).count_ones() % 2);
            let trail = u64::from(
                field(data, len, trail_start, len - trail_start + 1).count_ones() % 2 == 0,
            );
            data | lead << (len - 1) | trail
        }
        WiegandFormat::Corporate1000 => {
            let bit2 = u64::from((data & C1K_EVEN_MASK).count_ones() % 2);
            let frame = data | bit2 << 33;
            let bit35 = u64::from((frame & C1K_ODD_MASK).count_ones() % 2 == 0);
            let frame = frame | bit35;
            let bit1 = u64::from(frame.count_ones() % 2 == 0);
            frame | bit1 << 34
        }
    };
    Ok(frame)
}

/// Reads `bit_len` left-aligned bits (first bit in the most significant bit of byte 0) as an
/// integer. `None` when `bit_len` exceeds 128 or the bytes are too few.
pub fn value_from_bits(bits: &[u8], bit_len: u32) -> Option<u128> {
    if bit_len > 128 {
        return None;
    }
    let n_bytes = bit_len.div_ceil(8) as usize;
    let bytes = bits.get(..n_bytes)?;
    let mut value: u128 = 0;
    for &byte in bytes {
        value = value << 8 | u128::from(byte);
    }
    let spare = n_bytes as u32 * 8 - bit_len;
    Some(value >> spare)
}

/// Writes the low `bit_len` bits of `value` left-aligned into bytes, the layout of
/// [`RawBadge::Pacs`]. `bit_len` above 128 is treated as 128.
pub fn bits_from_value(value: u128, bit_len: u32) -> Vec<u8> {
    let bit_len = bit_len.min(128);
    let n_bytes = bit_len.div_ceil(8) as usize;
    let spare = n_bytes as u32 * 8 - bit_len;
    let value = if bit_len == 128 {
        value
    } else {
        value & ((1u128 << bit_len) - 1)
    };
    let aligned = value << spare;
    let all = aligned.to_be_bytes();
    all[16 - n_bytes..].to_vec()
}

/// Corporate 1000 parity masks on the 35-bit frame (bit 34 = b1 ... bit 0 = b35). The even
/// parity bit b2 covers b3 and two of every three bits from b4 to b34; the odd parity bit b35
/// covers b2, b3 and the other shifted pattern; b1 covers everything.
const C1K_EVEN_MASK: u64 = 1 << 32 | 0xB6DB_6DB6;
const C1K_EVEN_MASK_WITH_BIT: u64 = C1K_EVEN_MASK | 1 << 33;
const C1K_ODD_MASK: u64 = 0b11 << 32 | 0x6DB6_DB6C;
const C1K_ODD_MASK_WITH_BIT: u64 = C1K_ODD_MASK | 1;

fn mask(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

/// `width` bits starting at 1-based position `first` of a `len`-bit frame.
fn field(frame: u64, len: u32, first: u32, width: u32) -> u64 {
    let last = first + width - 1;
    (frame >> (len - last)) & mask(width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h10301_worked_example() {
        // readers.md 3.1: FC 1, CN 12345 -> 1 00000001 0011000000111001 1 = 0x2026073.
        assert_eq!(encode(WiegandFormat::H10301, 1, 12345), Ok(0x202_6073));
        let card = decode_frame(WiegandFormat::H10301, 0x202_6073).expect("valid");
        assert_eq!((card.facility, card.card), (1, 12345));
    }

    #[test]
    fn flipped_parity_bits_are_refused() {
        for format in WiegandFormat::ALL {
            let frame = encode(format, 77, 4242).expect("fits");
            let len = format.bit_len();
            for bit in 0..len {
                let broken = frame ^ (1 << bit);
                assert!(
                    matches!(
                        decode_frame(format, broken),
                        Err(WiegandError::Parity { .. })
                    ),
                    "{format}: flipping bit {} went unnoticed",
                    len - bit
                );
            }
        }
    }

    #[test]
    fn bits_round_trip() {
        let bits = bits_from_value(0x202_6073, 26);
        assert_eq!(bits, vec![0x80, 0x98, 0x1C, 0xC0]);
        assert_eq!(value_from_bits(&bits, 26), Some(0x202_6073));
        assert_eq!(value_from_bits(&bits, 33), None);
    }
}
