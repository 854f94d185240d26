//! The console's reads from the fleet store (as the console role) and its one write,
//! queuing an admin request.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use tokio_postgres::Client;

/// One cabinet on the overview.
#[derive(Debug, Clone)]
pub struct Cabinet {
    pub name: String,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub version: Option<String>,
    pub health: Option<String>,
    pub readers_online: i32,
    pub readers_total: i32,
    pub mdm_reachable: Option<bool>,
    pub actions_waiting: i32,
    pub slots_ready: i32,
    pub slots_total: i32,
    pub loans: i32,
}

/// One phone: docked in a slot, or out on loan.
#[derive(Debug, Clone)]
pub struct Phone {
    pub station_id: String,
    pub cabinet: String,
    pub slot: String,
    pub device: String,
    pub device_name: Option<String>,
    pub state: String,
    pub holder: Option<String>,
    pub username: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub due: Option<DateTime<Utc>>,
    pub overdue: bool,
}

/// One line of history.
#[derive(Debug, Clone)]
pub struct Event {
    pub cabinet: String,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub username: Option<String>,
    pub device: Option<String>,
    pub slot: Option<String>,
    pub detail: String,
}

pub async fn cabinets(client: &Client) -> Result<Vec<Cabinet>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT s.station_id, s.name, h.at, h.version, h.health,
                    coalesce(h.readers_online, 0), coalesce(h.readers_total, 0), h.mdm_reachable,
                    coalesce(h.actions_waiting, 0), coalesce(h.slots_ready, 0),
                    coalesce(h.slots_total, 0), coalesce(h.loans, 0)
             FROM badgedock.stations s LEFT JOIN badgedock.heartbeats h USING (station_id)
             ORDER BY s.name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Cabinet {
            name: row.get(1),
            heartbeat_at: row.get(2),
            version: row.get(3),
            health: row.get(4),
            readers_online: row.get(5),
            readers_total: row.get(6),
            mdm_reachable: row.get(7),
            actions_waiting: row.get(8),
            slots_ready: row.get(9),
            slots_total: row.get(10),
            loans: row.get(11),
        })
        .collect())
}

/// Every phone, docked or out; `query` filters by user, holder, phone, serial or
/// cabinet (case-insensitive substring).
/// Phones an operator marked lost and not seen since at any cabinet (the latest of their
/// loan and dock events, fleet-wide, is `lost`).
pub async fn marked_lost(client: &Client) -> Result<Vec<Phone>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT * FROM (
                SELECT DISTINCT ON (e.device) e.station_id, st.name, e.slot, e.device, e.kind,
                       e.username, e.at
                FROM badgedock.events e JOIN badgedock.stations st USING (station_id)
                WHERE e.device IS NOT NULL
                  AND e.kind IN ('lost', 'found', 'docked', 'docked-again', 'moved', 'checkin',
                                 'checkout', 'checkout-reserved', 'loan-closed')
                ORDER BY e.device, e.at DESC, e.seq DESC
             ) latest
             WHERE latest.kind = 'lost'
             ORDER BY latest.at DESC",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Phone {
            station_id: row.get(0),
            cabinet: row.get(1),
            slot: row.get::<_, Option<String>>(2).unwrap_or_default(),
            device: row.get(3),
            device_name: None,
            state: "lost".into(),
            holder: row.get(5),
            username: row.get(5),
            since: row.get(6),
            due: None,
            overdue: false,
        })
        .collect())
}

pub async fn phones(
    client: &Client,
    query: &str,
    loan_hours: u32,
) -> Result<Vec<Phone>, tokio_postgres::Error> {
    let pattern = format!("%{}%", query.trim().replace(['%', '_'], ""));
    let rows = client
        .query(
            "SELECT * FROM (
                SELECT st.station_id, st.name AS cabinet, sl.label AS slot, sl.device,
                       sl.device_name, sl.state, sl.holder, NULL::text AS username, sl.since,
                       false AS overdue, sl.position
                FROM badgedock.slots sl JOIN badgedock.stations st USING (station_id)
                WHERE sl.device IS NOT NULL
                UNION ALL
                SELECT st.station_id, st.name, l.slot, l.device, l.device_name, 'out',
                       l.holder, l.username, l.since, l.overdue, -1
                FROM badgedock.loans l JOIN badgedock.stations st USING (station_id)
             ) p
             WHERE $1 = '%%' OR p.cabinet ILIKE $1 OR p.device ILIKE $1
                OR p.device_name ILIKE $1 OR p.holder ILIKE $1 OR p.username ILIKE $1
             ORDER BY p.cabinet, p.position, p.slot",
            &[&pattern],
        )
        .await?;
    let now = Utc::now();
    Ok(rows
        .iter()
        .map(|row| {
            let state: String = row.get(5);
            let since: Option<DateTime<Utc>> = row.get(8);
            let due = (state == "out")
                .then(|| since.map(|s| s + ChronoDuration::hours(i64::from(loan_hours))))
                .flatten();
            Phone {
                station_id: row.get(0),
                cabinet: row.get(1),
                slot: row.get(2),
                device: row.get(3),
                device_name: row.get(4),
                holder: row.get(6),
                username: row.get(7),
                since,
                overdue: row.get::<_, bool>(9) || due.is_some_and(|d| d < now),
                due,
                state,
            }
        })
        .collect())
}

/// History of a phone (`device`) or a user (`username`), newest first.
pub async fn history(
    client: &Client,
    device: Option<&str>,
    username: Option<&str>,
) -> Result<Vec<Event>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT st.name, e.at, e.kind, e.username, e.device, e.slot, e.detail
             FROM badgedock.events e JOIN badgedock.stations st USING (station_id)
             WHERE ($1::text IS NULL OR e.device = $1) AND ($2::text IS NULL OR e.username = $2)
             ORDER BY e.at DESC, e.seq DESC LIMIT 500",
            &[&device, &username],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Event {
            cabinet: row.get(0),
            at: row.get(1),
            kind: row.get(2),
            username: row.get(3),
            device: row.get(4),
            slot: row.get(5),
            detail: row.get(6),
        })
        .collect())
}

/// Phones out at the end of each of the last 24 hours, oldest first: the loans open
/// now, walked back through the check-outs and check-ins since.
pub async fn out_by_hour(
    client: &Client,
) -> Result<Vec<(DateTime<Utc>, i64)>, tokio_postgres::Error> {
    let now = Utc::now();
    let open: i64 = client
        .query_one("SELECT count(*) FROM badgedock.loans", &[])
        .await?
        .get(0);
    let since = now - ChronoDuration::hours(24);
    let rows = client
        .query(
            "SELECT at, kind FROM badgedock.events
             WHERE at > $1 AND kind IN ('checkout', 'checkin') ORDER BY at DESC",
            &[&since],
        )
        .await?;
    let moves: Vec<(DateTime<Utc>, i64)> = rows
        .iter()
        .map(|row| {
            let kind: String = row.get(1);
            (row.get(0), if kind == "checkout" { 1 } else { -1 })
        })
        .collect();
    let mut points = Vec::new();
    for hours_ago in (0..24).rev() {
        let at = now - ChronoDuration::hours(hours_ago);
        let later: i64 = moves.iter().filter(|(t, _)| *t > at).map(|(_, d)| d).sum();
        points.push((at, (open - later).max(0)));
    }
    Ok(points)
}

/// Queues an admin request for a station; returns its id.
pub async fn queue_request(
    client: &Client,
    station_id: &str,
    command: &serde_json::Value,
    requested_by: &str,
) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_one(
            "INSERT INTO badgedock.admin_requests (station_id, command, requested_by)
             VALUES ($1, $2, $3) RETURNING id",
            &[&station_id, command, &requested_by],
        )
        .await?
        .get(0))
}

/// The latest admin requests with their outcome.
pub async fn requests(
    client: &Client,
) -> Result<Vec<(i64, String, String, String, Option<String>)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT r.id, st.name, r.command::text, r.requested_by, r.outcome
             FROM badgedock.admin_requests r JOIN badgedock.stations st USING (station_id)
             ORDER BY r.id DESC LIMIT 20",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
        .collect())
}
