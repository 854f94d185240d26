//! HID readers: RF IDeas SDK-mode feature reports and keyboard wedges. SKELETON: filled in by the HID work (issue 8).
