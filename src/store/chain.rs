//! The audit log's hash chain: every row carries SHA-256 over a canonical encoding of
//! itself and the previous row's hash, so a changed, removed or re-ordered row breaks
//! the chain at a sequence number `badgedock audit verify` can name.
//!
//! The first row chains onto 32 zero bytes, or onto the anchor left by retention: the
//! sequence number and hash of the last removed row (table `audit_anchor`). Rows carry
//! their sequence number in the hash, and `sqlite_sequence` remembers the highest one
//! ever inserted, so a row removed from the end is seen too.
//!
//! The chain is tamper-evident, not tamper-proof: someone who can write the file can
//! also recompute every hash after an edit. The copy sent to the SIEM (with the hash)
//! is what makes a rewritten history visible.

use ring::digest::{Context, SHA256};
use rusqlite::{params, OptionalExtension, Transaction};

/// A row's hash.
pub type Hash = [u8; 32];

/// What the first row chains onto when nothing was ever removed.
pub const GENESIS: Hash = [0; 32];

/// The append-only triggers, exactly as migration 1 created them; retention and the
/// chaining migration drop them inside their transaction and put them back.
pub(super) const NO_UPDATE_TRIGGER: &str = "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END";
pub(super) const NO_DELETE_TRIGGER: &str = "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END";

/// The columns of an audit row that the hash covers, in stored form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRow {
    /// Sequence number.
    pub seq: i64,
    /// Milliseconds since the epoch.
    pub at: i64,
    /// Kind.
    pub kind: String,
    /// Reader.
    pub reader: Option<String>,
    /// Redacted badge.
    pub badge: Option<String>,
    /// Username.
    pub username: Option<String>,
    /// Device platform name.
    pub device_platform: Option<String>,
    /// Device id.
    pub device_id: Option<String>,
    /// Slot label.
    pub slot: Option<String>,
    /// Detail sentence.
    pub detail: String,
}

/// SHA-256 over a domain tag, the previous hash and the row's fields, each field
/// length-prefixed (absent fields have their own tag), so no two different rows
/// encode alike.
pub fn row_hash(previous: &Hash, row: &ChainRow) -> Hash {
    fn text(context: &mut Context, value: Option<&str>) {
        match value {
            None => context.update(&[0]),
            Some(value) => {
                context.update(&[1]);
                context.update(&(value.len() as u64).to_be_bytes());
                context.update(value.as_bytes());
            }
        }
    }
    let mut context = Context::new(&SHA256);
    context.update(b"badgedock-audit-v1\0");
    context.update(previous);
    context.update(&row.seq.to_be_bytes());
    context.update(&row.at.to_be_bytes());
    text(&mut context, Some(&row.kind));
    text(&mut context, row.reader.as_deref());
    text(&mut context, row.badge.as_deref());
    text(&mut context, row.username.as_deref());
    text(&mut context, row.device_platform.as_deref());
    text(&mut context, row.device_id.as_deref());
    text(&mut context, row.slot.as_deref());
    text(&mut context, Some(&row.detail));
    let mut hash = GENESIS;
    hash.copy_from_slice(context.finish().as_ref());
    hash
}

/// Lower-case hex, for messages and the SIEM.
pub fn hex(hash: &[u8]) -> String {
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The outcome of `badgedock audit verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Rows whose hash was checked.
    pub n_rows: u64,
    /// The anchor the chain starts from (sequence number of the last removed row).
    pub anchor_seq: Option<i64>,
    /// The last sequence number of the chain, when there is one.
    pub head_seq: Option<i64>,
    /// The first problem, if any.
    pub problem: Option<ChainProblem>,
}

/// Where the chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainProblem {
    /// The row with this number is gone (rows after it, or the table's counter, show it
    /// existed).
    #[error("audit row {seq} is missing: it was removed outside badgedock's retention")]
    Missing {
        /// The first missing sequence number.
        seq: i64,
    },
    /// The row's stored hash does not match its contents and the row before it.
    #[error(
        "audit row {seq} does not match its hash: it was changed, or rows were re-ordered \
         (stored {stored}, computed {computed})"
    )]
    Mismatch {
        /// The sequence number.
        seq: i64,
        /// The stored hash, hex (or `none`).
        stored: String,
        /// The hash computed from the row and its predecessor, hex.
        computed: String,
    },
}

impl ChainProblem {
    /// The first bad sequence number.
    pub fn seq(&self) -> i64 {
        match self {
            ChainProblem::Missing { seq } | ChainProblem::Mismatch { seq, .. } => *seq,
        }
    }
}

/// The anchor: the last removed row's sequence number and hash.
pub(super) fn anchor(transaction: &Transaction<'_>) -> rusqlite::Result<Option<(i64, Hash)>> {
    transaction
        .query_row(
            "SELECT seq, hash FROM audit_anchor WHERE id = 1",
            [],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
        )
        .optional()
        .map(|found| found.map(|(seq, hash)| (seq, to_hash(&hash))))
}

/// The sequence number and hash the next row chains onto.
pub(super) fn head(transaction: &Transaction<'_>) -> rusqlite::Result<(i64, Hash)> {
    let last = transaction
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Option<Vec<u8>>>(1)?)),
        )
        .optional()?;
    let counter: i64 = transaction
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'audit'",
            [],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let (seq, hash) = match last {
        Some((seq, hash)) => (seq, to_hash(&hash.unwrap_or_default())),
        None => anchor(transaction)?.unwrap_or((0, GENESIS)),
    };
    // Never reuse a number, even one whose row is gone.
    Ok((seq.max(counter), hash))
}

fn to_hash(bytes: &[u8]) -> Hash {
    let mut hash = GENESIS;
    if bytes.len() == hash.len() {
        hash.copy_from_slice(bytes);
    }
    hash
}

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(ChainRow, Option<Vec<u8>>)> {
    Ok((
        ChainRow {
            seq: row.get(0)?,
            at: row.get(1)?,
            kind: row.get(2)?,
            reader: row.get(3)?,
            badge: row.get(4)?,
            username: row.get(5)?,
            device_platform: row.get(6)?,
            device_id: row.get(7)?,
            slot: row.get(8)?,
            detail: row.get(9)?,
        },
        row.get(10)?,
    ))
}

const CHAIN_SELECT: &str = "SELECT seq, at, kind, reader, badge, username, device_platform,
                                   device_id, slot, detail, hash
                            FROM audit";

/// Walks the whole chain in sequence order and reports the first break.
pub(super) fn verify(transaction: &Transaction<'_>) -> rusqlite::Result<Verification> {
    let anchor = anchor(transaction)?;
    let (mut previous_seq, mut previous_hash) = anchor.unwrap_or((0, GENESIS));
    let mut statement = transaction.prepare(&format!("{CHAIN_SELECT} ORDER BY seq"))?;
    let mut rows = statement.query([])?;
    let mut n_rows = 0;
    let mut head_seq = None;
    while let Some(row) = rows.next()? {
        let (row, stored) = read_row(row)?;
        if row.seq != previous_seq + 1 {
            return Ok(Verification {
                n_rows,
                anchor_seq: anchor.map(|(seq, _)| seq),
                head_seq,
                problem: Some(ChainProblem::Missing {
                    seq: previous_seq + 1,
                }),
            });
        }
        let computed = row_hash(&previous_hash, &row);
        if stored.as_deref() != Some(computed.as_slice()) {
            return Ok(Verification {
                n_rows,
                anchor_seq: anchor.map(|(seq, _)| seq),
                head_seq,
                problem: Some(ChainProblem::Mismatch {
                    seq: row.seq,
                    stored: stored.as_deref().map(hex).unwrap_or_else(|| "none".into()),
                    computed: hex(&computed),
                }),
            });
        }
        n_rows += 1;
        head_seq = Some(row.seq);
        previous_seq = row.seq;
        previous_hash = computed;
    }
    let counter: i64 = transaction
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'audit'",
            [],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let problem = (counter > previous_seq).then_some(ChainProblem::Missing {
        seq: previous_seq + 1,
    });
    Ok(Verification {
        n_rows,
        anchor_seq: anchor.map(|(seq, _)| seq),
        head_seq,
        problem,
    })
}

/// Hashes every existing row in order (the migration that adds the column).
pub(super) fn chain_existing_rows(transaction: &Transaction<'_>) -> rusqlite::Result<()> {
    transaction.execute_batch("DROP TRIGGER audit_no_update")?;
    let rows = {
        let mut statement = transaction.prepare(&format!("{CHAIN_SELECT} ORDER BY seq"))?;
        let rows = statement
            .query_map([], read_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows
    };
    let mut previous = GENESIS;
    {
        let mut update = transaction.prepare("UPDATE audit SET hash = ?2 WHERE seq = ?1")?;
        for (row, _) in rows {
            let hash = row_hash(&previous, &row);
            update.execute(params![row.seq, hash.as_slice()])?;
            previous = hash;
        }
    }
    transaction.execute_batch(NO_UPDATE_TRIGGER)
}

/// What retention did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Rows removed.
    pub n_removed: u64,
    /// The new anchor (last removed sequence number), when rows were removed.
    pub anchor_seq: Option<i64>,
}

/// Removes the rows older than `before_ms` (a prefix of the chain, never past
/// `keep_from_seq`), leaving the last removed row's hash as the anchor.
pub(super) fn prune(
    transaction: &Transaction<'_>,
    before_ms: i64,
    keep_from_seq: Option<i64>,
    now_ms: i64,
) -> rusqlite::Result<Pruned> {
    // The prefix of rows older than the horizon ends before the first newer row.
    let first_kept: Option<i64> = transaction.query_row(
        "SELECT min(seq) FROM audit WHERE at >= ?1",
        params![before_ms],
        |row| row.get(0),
    )?;
    let last_row: Option<i64> =
        transaction.query_row("SELECT max(seq) FROM audit", [], |row| row.get(0))?;
    let Some(last_row) = last_row else {
        return Ok(Pruned {
            n_removed: 0,
            anchor_seq: None,
        });
    };
    let mut cut = first_kept.map(|seq| seq - 1).unwrap_or(last_row);
    if let Some(keep) = keep_from_seq {
        cut = cut.min(keep - 1);
    }
    let (cut_seq, cut_hash) = match transaction
        .query_row(
            "SELECT seq, hash FROM audit WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1",
            params![cut],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
        )
        .optional()?
    {
        Some(found) => found,
        None => {
            return Ok(Pruned {
                n_removed: 0,
                anchor_seq: None,
            })
        }
    };
    transaction.execute_batch("DROP TRIGGER audit_no_delete")?;
    let n_removed = transaction.execute("DELETE FROM audit WHERE seq <= ?1", params![cut_seq])?;
    transaction.execute(
        "INSERT INTO audit_anchor (id, seq, hash, pruned_at, n_removed) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
             pruned_at = excluded.pruned_at, n_removed = audit_anchor.n_removed + excluded.n_removed",
        params![cut_seq, cut_hash, now_ms, n_removed as i64],
    )?;
    transaction.execute_batch(NO_DELETE_TRIGGER)?;
    Ok(Pruned {
        n_removed: n_removed as u64,
        anchor_seq: Some(cut_seq),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64) -> ChainRow {
        ChainRow {
            seq,
            at: 1_700_000_000_000,
            kind: "tap".into(),
            reader: Some("front".into()),
            badge: None,
            username: Some("amartin".into()),
            device_platform: None,
            device_id: None,
            slot: None,
            detail: "x".into(),
        }
    }

    #[test]
    fn every_field_and_the_previous_hash_change_the_hash() {
        let base = row(1);
        let hash = row_hash(&GENESIS, &base);
        assert_ne!(hash, row_hash(&[1; 32], &base));
        assert_ne!(hash, row_hash(&GENESIS, &row(2)));
        let mut moved = base.clone();
        // The same bytes in another field encode differently.
        moved.reader = None;
        moved.badge = Some("front".into());
        assert_ne!(hash, row_hash(&GENESIS, &moved));
        let mut empty = base.clone();
        empty.reader = Some(String::new());
        assert_ne!(row_hash(&GENESIS, &empty), {
            let mut none = base;
            none.reader = None;
            row_hash(&GENESIS, &none)
        });
        assert_eq!(hex(&[0, 255, 16]), "00ff10");
    }
}
