//! The bytes spoken to PC/SC contactless readers: the GET DATA pseudo-APDU that reads a
//! card's UID, what its status words mean, and the vendor commands that beep or flash
//! a reader. Pure functions, so every answer a reader can give is unit-tested here.
//!
//! Sources (see `readers.md` §1.1 in the project notes): PC/SC Part 3 "Get Data"; ACS
//! ACR1281U-C1 / ACM1281U-C7 and SCM SCL3711 reference manuals for the status words;
//! ACS ACR122U / ACM1252U-Y3 manuals for the bi-colour LED and buzzer pseudo-APDU;
//! ACS ACR1252U / ACR1255U-J1 / ACR1281U-C1 manuals for the `E0 00 00 28` buzzer escape.

/// `FF CA 00 00 00`: GET DATA, P1 `00` = UID (or PUPI), Le `00` = the whole UID.
pub const GET_UID: [u8; 5] = [0xFF, 0xCA, 0x00, 0x00, 0x00];

/// Why a card produced no usable UID, already worded for the screen and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoUid {
    /// The status word, when the reader sent one (`6A 81`), for the log's `sw` field.
    pub status: Option<[u8; 2]>,
    /// What happened and what to do.
    pub reason: String,
}

/// Reads the UID out of the reader's answer to [`GET_UID`].
///
/// Only `90 00` with at least one data byte is a UID; every other answer is a [`NoUid`]
/// that names the status word and what it means.
pub fn parse_uid_answer(answer: &[u8]) -> Result<Vec<u8>, NoUid> {
    let Some(split) = answer.len().checked_sub(2) else {
        return Err(NoUid {
            status: None,
            reason: format!(
                "the reader answered the UID request with {} byte(s), not even a status word",
                answer.len()
            ),
        });
    };
    let (data, status) = answer.split_at(split);
    let (sw1, sw2) = (status[0], status[1]);
    let word = [sw1, sw2];
    let refused = |reason: String| {
        Err(NoUid {
            status: Some(word),
            reason,
        })
    };
    match (sw1, sw2) {
        (0x90, 0x00) if data.is_empty() => {
            refused("the reader answered 90 00 but sent no UID bytes; try again".into())
        }
        (0x90, 0x00) => Ok(data.to_vec()),
        (0x6A, 0x81) => refused(
            "the reader does not support reading this card's UID (status 6A 81, function not supported)"
                .into(),
        ),
        (0x63, 0x00) => refused(
            "the reader could not read the card's UID (status 63 00, operation failed); tap again"
                .into(),
        ),
        (0x6C, length) => refused(format!(
            "the reader rejected the UID request's length (status 6C {length:02X}: the UID is {length} bytes); \
             this reader needs a firmware or driver that accepts Le 00"
        )),
        (0x62, 0x82) => refused(
            "the reader returned less data than asked (status 62 82, end of data); tap again".into(),
        ),
        _ => refused(format!(
            "the reader answered the UID request with status {sw1:02X} {sw2:02X}, which is not success (90 00)"
        )),
    }
}

/// Reader models whose beep and LEDs badgedock knows how to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderFamily {
    /// ACS ACR122U: the `FF 00 40` LED-and-buzzer pseudo-APDU, sent to the card's
    /// connection (or as an escape command where the driver allows it).
    Acr122u,
    /// ACS ACR1252U and its siblings (ACR1255U-J1, ACR1281U-C1, ACR1283L, ACM1252U): the
    /// `E0 00 00 28` buzzer escape command through `SCardControl`.
    Acr12xx,
    /// Anything else: no feedback, because a wrong vendor command can upset a reader.
    Unknown,
}

impl ReaderFamily {
    /// The family of a reader, from the name pcscd gives it
    /// (`"ACS ACR122U PICC Interface 00 00"`, `"ACS ACR1252 1S CL Reader [ACR1252 1S CL Reader PICC] 00 00"`).
    pub fn from_reader_name(name: &str) -> ReaderFamily {
        let name = name.to_ascii_uppercase();
        if name.contains("ACR122U") {
            ReaderFamily::Acr122u
        } else if ["ACR1252", "ACR1255", "ACR1281", "ACR1283", "ACM1252"]
            .iter()
            .any(|model| name.contains(model))
        {
            ReaderFamily::Acr12xx
        } else {
            ReaderFamily::Unknown
        }
    }
}

/// The ACR122U LED-and-buzzer pseudo-APDU: `FF 00 40 P2 04 T1 T2 repeat buzzer`.
///
/// P2 bits (ACR122U / ACM1252U-Y3 manuals): 0 final red, 1 final green, 2 red mask,
/// 3 green mask, 4 initial red blink state, 5 initial green blink state, 6 red blink
/// mask, 7 green blink mask. The final-state masks stay 0 so the reader's idle LED is
/// left as it was. T1/T2 are in 100 ms; the last byte links the buzzer to T1.
/// Success: green blinks once with a 100 ms beep. Failure: red blinks twice, each with
/// a 300 ms beep.
pub fn acr122u_feedback(ok: bool) -> [u8; 9] {
    if ok {
        [0xFF, 0x00, 0x40, 0xA0, 0x04, 0x01, 0x01, 0x01, 0x01]
    } else {
        [0xFF, 0x00, 0x40, 0x50, 0x04, 0x03, 0x01, 0x02, 0x01]
    }
}

/// True when the reader accepted an [`acr122u_feedback`] command: it answers `90 xx`,
/// `xx` being its current LED state.
pub fn acr122u_feedback_accepted(answer: &[u8]) -> bool {
    answer.len() >= 2 && answer[answer.len() - 2] == 0x90
}

/// The ACR12xx buzzer escape command `E0 00 00 28 01 duration` (duration in 10 ms):
/// a short 100 ms beep for success, a long 500 ms beep for failure. The LEDs are left
/// alone: their bit layout differs between models.
pub fn acr12xx_buzzer(ok: bool) -> [u8; 6] {
    let duration = if ok { 10 } else { 50 };
    [0xE0, 0x00, 0x00, 0x28, 0x01, duration]
}

/// True when an ACR12xx reader accepted an escape command (`E1 00 00 00 …`).
pub fn acr12xx_accepted(answer: &[u8]) -> bool {
    answer.first() == Some(&0xE1)
}

/// Escape-command control codes to try, in order: `SCARD_CTL_CODE(3500)` is what ACS's
/// own driver (acsccid) and Windows use; `SCARD_CTL_CODE(1)` is libccid's
/// `IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE`, refused unless `ifdDriverOptions` has bit 0 set
/// in the driver's `Info.plist`.
pub fn escape_control_codes() -> [pcsc::ffi::DWORD; 2] {
    [pcsc::ctl_code(3500), pcsc::ctl_code(1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_90_00_with_data_is_a_uid() {
        assert_eq!(
            parse_uid_answer(&[0xDE, 0xAD, 0xBE, 0xEF, 0x90, 0x00]),
            Ok(vec![0xDE, 0xAD, 0xBE, 0xEF])
        );
        let seven = [0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x90, 0x00];
        assert_eq!(parse_uid_answer(&seven), Ok(seven[..7].to_vec()));
        let empty = parse_uid_answer(&[0x90, 0x00]).expect_err("no UID bytes");
        assert_eq!(empty.status, Some([0x90, 0x00]));
        assert!(empty.reason.contains("no UID bytes"), "{}", empty.reason);
    }

    #[test]
    fn error_status_words_are_named_with_their_meaning() {
        let cases: [(&[u8], &str); 5] = [
            (&[0x6A, 0x81], "6A 81, function not supported"),
            (&[0x63, 0x00], "63 00, operation failed"),
            (&[0x6C, 0x07], "6C 07: the UID is 7 bytes"),
            (&[0xDE, 0xAD, 0x62, 0x82], "62 82, end of data"),
            (&[0x6D, 0x00], "status 6D 00, which is not success"),
        ];
        for (answer, expected) in cases {
            let no_uid = parse_uid_answer(answer).expect_err("not a UID");
            assert!(
                no_uid.reason.contains(expected),
                "{answer:02X?}: {}",
                no_uid.reason
            );
            assert_eq!(
                no_uid.status.map(|s| s.to_vec()),
                Some(answer[answer.len() - 2..].to_vec())
            );
        }
    }

    #[test]
    fn answers_shorter_than_a_status_word_are_refused() {
        for answer in [&[][..], &[0x90][..]] {
            let no_uid = parse_uid_answer(answer).expect_err("not a UID");
            assert_eq!(no_uid.status, None);
            assert!(no_uid.reason.contains("not even a status word"));
        }
    }

    #[test]
    fn reader_families_come_from_pcscd_names() {
        assert_eq!(
            ReaderFamily::from_reader_name("ACS ACR122U PICC Interface 00 00"),
            ReaderFamily::Acr122u
        );
        assert_eq!(
            ReaderFamily::from_reader_name(
                "ACS ACR1252 1S CL Reader [ACR1252 1S CL Reader PICC] 00 00"
            ),
            ReaderFamily::Acr12xx
        );
        assert_eq!(
            ReaderFamily::from_reader_name("ACS ACR1255U-J1 PICC Reader 00 00"),
            ReaderFamily::Acr12xx
        );
        for other in [
            "Virtual PCD 00 00",
            "HID Global OMNIKEY 5427 CK 00 00",
            "ACS ACR1222L 00 00",
        ] {
            assert_eq!(
                ReaderFamily::from_reader_name(other),
                ReaderFamily::Unknown,
                "{other}"
            );
        }
    }

    #[test]
    fn feedback_commands_follow_the_vendor_layouts() {
        let ok = acr122u_feedback(true);
        let fail = acr122u_feedback(false);
        assert_eq!(&ok[..3], &[0xFF, 0x00, 0x40]);
        // Success blinks green only, failure red only; neither touches the final state.
        assert_eq!(ok[3] & 0x0F, 0);
        assert_eq!(ok[3] & 0x40, 0);
        assert_eq!(fail[3] & 0x80, 0);
        assert_eq!(fail[3] & 0x0F, 0);
        assert_eq!(ok[4], 4);
        assert!(fail[7] > ok[7], "failure repeats more");
        assert!(acr122u_feedback_accepted(&[0x90, 0x02]));
        assert!(!acr122u_feedback_accepted(&[0x63, 0x00]));
        assert_eq!(acr12xx_buzzer(true), [0xE0, 0x00, 0x00, 0x28, 0x01, 10]);
        assert!(acr12xx_buzzer(false)[5] > acr12xx_buzzer(true)[5]);
        assert!(acr12xx_accepted(&[0xE1, 0x00, 0x00, 0x00, 0x01, 0x00]));
        assert!(!acr12xx_accepted(&[]));
    }
}
