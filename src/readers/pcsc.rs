//! PC/SC readers through pcsc-lite. SKELETON: filled in by the PC/SC work (issue 4).
