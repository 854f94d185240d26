//! The control socket protocol: JSON lines over a Unix socket, versioned.
