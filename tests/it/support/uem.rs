//! Helpers for the Workspace ONE tests: start the simulator on 127.0.0.1:0, build clients
//! for it, read fixtures, and pick calls out of the journal.

use std::path::PathBuf;

use badgedock::config::UemConfig;
use badgedock::domain::DeviceKey;
use badgedock::mdm::UemClient;
use badgedock::uemsim::{self, JournalEntry, SimHandle, SimOptions};

/// The built-in seed's well-known devices.
pub const UDID_101: &str = "00008110-000A1B2C3D4E801E";
pub const UDID_102: &str = "00008110-001C2D3E4F5A602E";
pub const UDID_103: &str = "00008030-0012345678ABCDEF";
pub const UDID_104_OLD: &str = "A1B2C3D4E5F60718293A4B5C6D7E8F9012345678";
pub const UDID_106_USER_ENROLLED: &str = "00008101-000E1F2A3B4C5D6E";
pub const UDID_107_SINGLE_STAGED: &str = "00008110-00AA11BB22CC33DD";
pub const SERIAL_201: &str = "R58N12ABCDE";

/// A simulator with the built-in seed.
pub async fn sim() -> SimHandle {
    uemsim::start(SimOptions::default()).await.unwrap()
}

/// A simulator with these options.
pub async fn sim_with(options: SimOptions) -> SimHandle {
    uemsim::start(options).await.unwrap()
}

/// The OAuth config for the simulator (tenant code included).
pub fn oauth_config(sim: &SimHandle) -> UemConfig {
    sim.oauth_config().unwrap()
}

/// The Basic-auth config for the simulator.
pub fn basic_config(sim: &SimHandle) -> UemConfig {
    sim.basic_config().unwrap()
}

/// A client from a config.
pub fn client(config: &UemConfig) -> UemClient {
    UemClient::new(config).unwrap()
}

/// An Apple device as the dock would see it: the USB serial (no hyphen, any case).
pub fn apple(udid: &str) -> DeviceKey {
    DeviceKey::apple_from_usb_serial(&udid.replace('-', "").to_ascii_lowercase())
}

/// Calls to the REST API (not the token endpoint), oldest first.
pub fn api_calls(sim: &SimHandle) -> Vec<JournalEntry> {
    sim.journal()
        .into_iter()
        .filter(JournalEntry::is_api)
        .collect()
}

/// Calls to the token endpoint.
pub fn token_calls(sim: &SimHandle) -> Vec<JournalEntry> {
    sim.journal()
        .into_iter()
        .filter(JournalEntry::is_token)
        .collect()
}

/// `tests/fixtures/ws1`.
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ws1")
}

/// A saved body.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap()
}

/// A saved JSON body.
pub fn fixture_json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// Fails when `text` contains any of the secrets.
pub fn assert_no_secrets(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} leaked into: {text}");
    }
    assert!(!text.contains("simtok"), "a token leaked into: {text}");
}
