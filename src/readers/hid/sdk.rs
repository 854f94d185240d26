//! RF IDeas pcProx "SDK mode": the card is read through vendor feature reports, so the
//! reader never types (readers.md 2.3, from micolous/pcprox; reverse engineered).
//!
//! Every command and reply is an 8-byte feature report with report id 0; through hidapi the
//! buffers carry the report id as a leading `00` byte (9 bytes). Reading a card is a
//! transcript of four reports: SET `8F`, GET card data (all zero = no card), SET `8E`, GET
//! card info (byte 0 = number of valid bits). `8F` must come first or `8E` is not updated.
//! The card data is a little-endian integer of those bits, with the parity bits the reader
//! is configured to strip (`iLeadParityBitCnt`, `iTrailParityBitCnt`, config page 0 byte 2)
//! already removed; the reader never checks parity.
//!
//! [`assemble`] turns that into [`RawBadge::Pacs`]: when the reader strips nothing the
//! frame is delivered whole (and the format rule checks parity); when it strips exactly the
//! parity bits of a known layout (26-bit 1+1, 35-bit 2+1, 37-bit 1+1) the frame is rebuilt
//! with recomputed parity, so it renders like the same card on a reader that keeps them;
//! otherwise only the bits the reader gave are delivered. [`SdkReader`] polls, debounces a
//! held card (the buffer stays non-zero while the card is on the reader) and applies the
//! same-card lock-out after removal. Everything here runs against the [`FeatureIo`] trait,
//! so tests replay byte-exact transcripts.

use crate::badges::wiegand::{self, WiegandFormat};
use crate::badges::RawBadge;
use crate::readers::hid::SourceError;

/// USB vendor id of RF IDeas; only these devices are spoken to with feature reports.
pub const RF_IDEAS_VENDOR_ID: u16 = 0x0c27;

/// Select config page 0 (for reading: GET returns the page).
pub const CMD_CONFIG_PAGE_0: u8 = 0x80;
/// Card info buffer: byte 0 = valid bits in the card data buffer.
pub const CMD_CARD_INFO: u8 = 0x8E;
/// Card data buffer: the card's bits, parity stripped per config.
pub const CMD_CARD_DATA: u8 = 0x8F;

/// A feature report is 8 bytes plus the leading report-id byte hidapi wants.
pub const FEATURE_LEN: usize = 9;

/// Feature-report access to one HID device, in hidapi's convention: `data[0]` / `buf[0]` is
/// the report id (`00` for pcProx), and `get_feature` returns the bytes written to `buf`,
/// report id included.
pub trait FeatureIo {
    /// SET_REPORT (feature).
    fn send_feature(&mut self, data: &[u8]) -> Result<(), SourceError>;
    /// GET_REPORT (feature) into `buf`.
    fn get_feature(&mut self, buf: &mut [u8]) -> Result<usize, SourceError>;
}

/// The parts of the reader's configuration that matter for reading cards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SdkConfig {
    /// Leading bits the reader strips from each card (`iLeadParityBitCnt`).
    pub lead_parity_bits: u32,
    /// Trailing bits the reader strips (`iTrailParityBitCnt`).
    pub trail_parity_bits: u32,
    /// `bHaltKBSnd`: the reader does not type. When false it also types every card into
    /// whatever has keyboard focus.
    pub keystrokes_halted: bool,
}

impl SdkConfig {
    /// Parses config page 0 (the 8 bytes after the report id).
    pub fn from_page0(page: &[u8; 8]) -> SdkConfig {
        SdkConfig {
            lead_parity_bits: u32::from(page[2] & 0x0F),
            trail_parity_bits: u32::from(page[2] >> 4),
            keystrokes_halted: page[7] & 0x80 != 0,
        }
    }
}

/// One look at the card buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardRead {
    /// The data buffer is all zero (or the bit count is zero).
    NoCard,
    /// A card: the 8 data bytes (little-endian bits) and how many bits are valid.
    Card {
        /// Card data buffer.
        data: [u8; 8],
        /// Valid bits in `data`.
        bit_count: u32,
    },
    /// A reply shorter than a feature report.
    Short {
        /// The command answered.
        command: u8,
        /// Data bytes received (report id excluded).
        n_bytes: usize,
    },
}

/// What the poller reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkOutput {
    /// A card was presented.
    Tap(RawBadge),
    /// Something came back that is not a card; the reason is free of badge bits.
    BadRead(String),
}

/// The answer to one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The 8 data bytes (report id removed).
    Data([u8; 8]),
    /// Fewer bytes came back.
    Short {
        /// Data bytes received (report id excluded).
        n_bytes: usize,
    },
}

/// Sends a one-byte command and reads the 8-byte reply.
pub fn command(io: &mut dyn FeatureIo, code: u8) -> Result<Reply, SourceError> {
    let mut request = [0u8; FEATURE_LEN];
    request[1] = code;
    io.send_feature(&request)?;
    let mut reply = [0u8; FEATURE_LEN];
    let n_read = io.get_feature(&mut reply)?.min(FEATURE_LEN);
    if n_read < FEATURE_LEN {
        return Ok(Reply::Short {
            n_bytes: n_read.saturating_sub(1),
        });
    }
    let mut data = [0u8; 8];
    data.copy_from_slice(&reply[1..FEATURE_LEN]);
    Ok(Reply::Data(data))
}

/// Reads config page 0.
pub fn read_config(io: &mut dyn FeatureIo) -> Result<SdkConfig, SourceError> {
    match command(io, CMD_CONFIG_PAGE_0)? {
        Reply::Data(page) => Ok(SdkConfig::from_page0(&page)),
        Reply::Short { n_bytes } => Err(SourceError(format!(
            "the reader answered its configuration query with {n_bytes} of 8 bytes: is it an RF IDeas pcProx?"
        ))),
    }
}

/// Reads the card buffer: `8F` then `8E`.
pub fn read_card(io: &mut dyn FeatureIo) -> Result<CardRead, SourceError> {
    let data = match command(io, CMD_CARD_DATA)? {
        Reply::Data(data) => data,
        Reply::Short { n_bytes } => {
            return Ok(CardRead::Short {
                command: CMD_CARD_DATA,
                n_bytes,
            })
        }
    };
    if data == [0; 8] {
        return Ok(CardRead::NoCard);
    }
    let info = match command(io, CMD_CARD_INFO)? {
        Reply::Data(info) => info,
        Reply::Short { n_bytes } => {
            return Ok(CardRead::Short {
                command: CMD_CARD_INFO,
                n_bytes,
            })
        }
    };
    if info[0] == 0 {
        // The card left between the two queries.
        return Ok(CardRead::NoCard);
    }
    Ok(CardRead::Card {
        data,
        bit_count: u32::from(info[0]),
    })
}

/// Builds the PACS read from the card buffer (see the module doc). `bit_count` must be
/// 1..=64.
pub fn assemble(data: &[u8; 8], bit_count: u32, config: &SdkConfig) -> RawBadge {
    let bit_count = bit_count.clamp(1, 64);
    let all = u64::from_le_bytes(*data);
    let value = if bit_count == 64 {
        all
    } else {
        all & ((1u64 << bit_count) - 1)
    };
    let lead = config.lead_parity_bits;
    let trail = config.trail_parity_bits;
    if lead + trail > 0 {
        let known = WiegandFormat::for_bit_len(bit_count + lead + trail)
            .filter(|format| format.parity_bits() == (lead, trail));
        if let Some(format) = known {
            let facility = (value >> format.card_bits()) as u32;
            let card = value & format.max_card();
            if let Ok(frame) = wiegand::encode(format, facility, card) {
                return RawBadge::Pacs {
                    bits: wiegand::bits_from_value(u128::from(frame), format.bit_len()),
                    bit_len: format.bit_len(),
                };
            }
        }
    }
    RawBadge::Pacs {
        bits: wiegand::bits_from_value(u128::from(value), bit_count),
        bit_len: bit_count,
    }
}

/// Polls one SDK-mode reader: presence tracking, lock-out and bad-read suppression.
#[derive(Debug, Clone)]
pub struct SdkReader {
    config: SdkConfig,
    lockout_ms: u64,
    present: Option<RawBadge>,
    /// Cards removed within the last `lockout_ms`, with the time they left.
    removed: Vec<(RawBadge, u64)>,
    /// The last bad-read reason sent, so a repeating fault is reported once.
    last_bad: Option<String>,
}

impl SdkReader {
    /// A poller for a reader with this configuration; the same card presented again within
    /// `lockout_ms` of its removal is not a new tap.
    pub fn new(config: SdkConfig, lockout_ms: u64) -> Self {
        SdkReader {
            config,
            lockout_ms,
            present: None,
            removed: Vec::new(),
            last_bad: None,
        }
    }

    /// The configuration read from the reader.
    pub fn config(&self) -> SdkConfig {
        self.config
    }

    /// One poll: the transcript, then [`SdkReader::observe`]. Transport errors (device
    /// gone) are returned as errors.
    pub fn poll(
        &mut self,
        io: &mut dyn FeatureIo,
        now_ms: u64,
    ) -> Result<Option<SdkOutput>, SourceError> {
        let read = read_card(io)?;
        Ok(self.observe(read, now_ms))
    }

    /// Feeds one look at the card buffer taken at `now_ms`.
    pub fn observe(&mut self, read: CardRead, now_ms: u64) -> Option<SdkOutput> {
        let lockout_ms = self.lockout_ms;
        self.removed
            .retain(|(_, at)| now_ms.saturating_sub(*at) < lockout_ms);
        match read {
            CardRead::NoCard => {
                self.last_bad = None;
                if let Some(card) = self.present.take() {
                    self.remember_removal(card, now_ms);
                }
                None
            }
            CardRead::Short { command, n_bytes } => self.bad(format!(
                "the reader answered command {command:02X} with {n_bytes} of 8 bytes; if this repeats, reconnect it"
            )),
            CardRead::Card { bit_count, .. } if bit_count > 64 => self.bad(format!(
                "the reader reports a {bit_count}-bit card, more than its 64-bit buffer holds"
            )),
            CardRead::Card { data, bit_count } => {
                self.last_bad = None;
                let card = assemble(&data, bit_count, &self.config);
                if self.present.as_ref() == Some(&card) {
                    return None;
                }
                let locked_out = self.removed.iter().any(|(previous, _)| *previous == card);
                if let Some(previous) = self.present.replace(card.clone()) {
                    // Swapped for another card without an empty poll in between.
                    self.remember_removal(previous, now_ms);
                }
                if locked_out {
                    None
                } else {
                    Some(SdkOutput::Tap(card))
                }
            }
        }
    }

    fn remember_removal(&mut self, card: RawBadge, now_ms: u64) {
        self.removed.retain(|(previous, _)| *previous != card);
        if self.removed.len() == MAX_REMEMBERED_REMOVALS {
            self.removed.remove(0);
        }
        self.removed.push((card, now_ms));
    }

    fn bad(&mut self, reason: String) -> Option<SdkOutput> {
        if self.last_bad.as_deref() == Some(reason.as_str()) {
            return None;
        }
        self.last_bad = Some(reason.clone());
        Some(SdkOutput::BadRead(reason))
    }
}

/// Removed cards remembered for the lock-out; more than a handful within a few seconds on
/// one reader is not a real use.
const MAX_REMEMBERED_REMOVALS: usize = 8;
