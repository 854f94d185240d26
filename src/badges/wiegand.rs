//! Wiegand PACS layouts with parity checks: H10301 (26-bit), Corporate 1000 (35-bit),
//! H10304 (37-bit). SKELETON: filled in by the HID reader work (issue 8).
