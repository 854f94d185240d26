//! Server-side rendered pages (maud). Plain HTML forms, no JavaScript; the overview and
//! phone lists refresh themselves every 15 s. Colours meet WCAG AA contrast and states
//! are always written in words too.

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::config::Role;
use super::data::{Cabinet, Event, Phone};

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#111;background:#fff;line-height:1.4}
header{background:#0b3d6b;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:1rem;align-items:center}
header a{color:#fff;font-weight:600}
header form{margin-left:auto}
main{padding:1rem;max-width:80rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}
th,td{border-bottom:1px solid #bbb;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#eef2f6}
.bad{color:#8a0000;font-weight:700}
.ok{color:#0a5c1a;font-weight:700}
.note{background:#fff4ce;border:1px solid #8a6d00;padding:.5rem}
label{font-weight:600;margin-right:.4rem}
input,select,button{font-size:1rem;padding:.3rem .5rem}
button{background:#0b3d6b;color:#fff;border:0;border-radius:3px;cursor:pointer}
.scroll{overflow-x:auto}
.sr{position:absolute;left:-9999px}
@media (max-width:600px){main{padding:.5rem}th,td{padding:.25rem}}
";

/// The page frame; `refresh` adds a meta refresh (live view without JavaScript).
pub fn layout(
    title: &str,
    user: Option<(&str, Role, &str)>,
    refresh: bool,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh { meta http-equiv="refresh" content="15"; }
                title { (title) " — badgedock fleet" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "badgedock fleet" }
                    @if let Some((name, role, csrf)) = user {
                        nav aria-label="Main" {
                            a href="/" { "Cabinets" } " · "
                            a href="/phones" { "Phones" } " · "
                            a href="/overdue" { "Overdue" } " · "
                            a href="/lost" { "Lost" }
                        }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            span { (name) " (" (if role == Role::Admin { "admin" } else { "viewer" }) ") " }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

pub fn login(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        false,
        html! {
            @if let Some(error) = error { p.note role="alert" { (error) } }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                p { label for="username" { "Username" } input id="username" name="username" autocomplete="username" required; }
                p { label for="password" { "Password" } input id="password" name="password" type="password" autocomplete="current-password" required; }
                p { button type="submit" { "Sign in" } }
            }
        },
    )
}

fn when(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

pub fn overview(cabinets: &[Cabinet], chart: Markup, phones_out: usize, overdue: usize) -> Markup {
    let stale = |c: &Cabinet| {
        c.heartbeat_at
            .is_none_or(|at| Utc::now().signed_duration_since(at).num_seconds() > 120)
    };
    html! {
        p { (cabinets.len()) " cabinets · " (phones_out) " phones out · "
            a href="/overdue" { (overdue) " overdue" } }
        div.scroll { table {
            caption.sr { "Cabinets with their health" }
            thead { tr {
                th scope="col" { "Cabinet" } th scope="col" { "Health" } th scope="col" { "Last heartbeat" }
                th scope="col" { "Ready" } th scope="col" { "Out" } th scope="col" { "Readers" }
                th scope="col" { "Workspace ONE" } th scope="col" { "Waiting" } th scope="col" { "Version" }
            } }
            tbody { @for c in cabinets { tr {
                th scope="row" { a href={ "/phones?q=" (urlencode(&c.name)) } { (c.name) } }
                td { @if stale(c) { span.bad { "silent" } }
                     @else if c.health.as_deref() == Some("ok") { span.ok { "ok" } }
                     @else { span.bad { (c.health.clone().unwrap_or_default()) } } }
                td { (when(c.heartbeat_at)) }
                td { (c.slots_ready) " / " (c.slots_total) }
                td { (c.loans) }
                td { (c.readers_online) " / " (c.readers_total) " online" }
                td { @match c.mdm_reachable { Some(true) => "reachable", Some(false) => span.bad { "unreachable" }, None => "not contacted" } }
                td { (c.actions_waiting) }
                td { (c.version.clone().unwrap_or_default()) }
            } } }
        } }
        h2 { "Phones out by hour (last 24 hours)" }
        (chart)
    }
}

/// Phones out by hour as an SVG bar chart, with a text alternative.
pub fn chart(points: &[(DateTime<Utc>, i64)]) -> Markup {
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1);
    let (width, height, bar) = (720.0_f64, 200.0_f64, 30.0_f64);
    let summary = points
        .iter()
        .map(|(at, n)| format!("{}: {n}", at.format("%H:00")))
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        figure {
            svg role="img" aria-labelledby="chart-title" viewBox={ "0 -16 " (width) " " (height + 46.0) } width="100%" style="max-width:720px" {
                title id="chart-title" { "Phones out by hour: " (summary) }
                @for (i, (at, n)) in points.iter().enumerate() {
                    @let h = (*n as f64) / (max as f64) * height;
                    rect x=(i as f64 * bar + 2.0) y=(height - h) width=(bar - 4.0) height=(h) fill="#0b3d6b" {}
                    text x=(i as f64 * bar + bar / 2.0) y=(height + 14.0) font-size="10" text-anchor="middle" { (at.format("%H")) }
                    @if *n > 0 { text x=(i as f64 * bar + bar / 2.0) y=(height - h - 3.0) font-size="10" text-anchor="middle" { (n) } }
                }
            }
            figcaption { "Maximum " (max) " phones out at once." }
        }
    }
}

pub fn phones(
    query: &str,
    phones: &[Phone],
    admin_csrf: Option<&str>,
    title_note: Option<&str>,
) -> Markup {
    html! {
        form method="get" action="/phones" role="search" {
            label for="q" { "Search by user, phone, serial or cabinet" }
            input id="q" name="q" value=(query) type="search";
            " " button type="submit" { "Search" }
        }
        @if let Some(note) = title_note { p.note { (note) } }
        p { (phones.len()) " phones" }
        div.scroll { table {
            thead { tr {
                th scope="col" { "Cabinet" } th scope="col" { "Slot" } th scope="col" { "Phone" }
                th scope="col" { "State" } th scope="col" { "Holder" } th scope="col" { "Since" }
                th scope="col" { "Due" } @if admin_csrf.is_some() { th scope="col" { "Admin" } }
            } }
            tbody { @for p in phones { tr {
                td { (p.cabinet) }
                td { (p.slot) }
                td { a href={ "/phone?id=" (urlencode(&p.device)) } { (p.device_name.clone().unwrap_or_else(|| p.device.clone())) }
                     br; small { "serial " (p.device) } }
                td { @if p.overdue { span.bad { (p.state) " — OVERDUE" } } @else { (p.state) } }
                td { @if let Some(user) = &p.username {
                        a href={ "/user?name=" (urlencode(user)) } { (p.holder.clone().unwrap_or_else(|| user.clone())) }
                     } @else { (p.holder.clone().unwrap_or_default()) } }
                td { (when(p.since)) }
                td { (when(p.due)) }
                @if let Some(csrf) = admin_csrf { td {
                    @if p.state == "out" {
                        form method="post" action="/admin" {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="station" value=(p.station_id);
                            input type="hidden" name="device" value=(p.device);
                            input type="hidden" name="user" value=(p.username.clone().unwrap_or_default());
                            label for={ "action-" (p.station_id) "-" (p.device) } { "Action" }
                            select id={ "action-" (p.station_id) "-" (p.device) } name="action" {
                                option value="close-loan" { "Close the loan (returned elsewhere, written off)" }
                                option value="mark-lost" { "Mark lost" }
                            }
                            " " button type="submit" { "Queue" }
                        }
                    } @else if p.state != "lost" {
                        form method="post" action="/admin" {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="station" value=(p.station_id);
                            input type="hidden" name="slot" value=(p.slot);
                            label for={ "action-" (p.station_id) "-" (p.slot) } { "Action" }
                            select id={ "action-" (p.station_id) "-" (p.slot) } name="action" {
                                option value="release-slot" { "Release the slot (return a set-aside phone to service, retry its work)" }
                                option value="cancel-reservation" { "Cancel reservation" }
                            }
                            " " button type="submit" { "Queue" }
                        }
                    }
                } }
            } } }
        } }
    }
}

pub fn history(events: &[Event]) -> Markup {
    html! {
        p { (events.len()) " events, newest first" }
        div.scroll { table {
            thead { tr {
                th scope="col" { "When" } th scope="col" { "Cabinet" } th scope="col" { "Event" }
                th scope="col" { "User" } th scope="col" { "Phone" } th scope="col" { "Slot" } th scope="col" { "Detail" }
            } }
            tbody { @for e in events { tr {
                td { (when(Some(e.at))) } td { (e.cabinet) } td { (e.kind) }
                td { @if let Some(u) = &e.username { a href={ "/user?name=" (urlencode(u)) } { (u) } } }
                td { @if let Some(d) = &e.device { a href={ "/phone?id=" (urlencode(d)) } { (d) } } }
                td { (e.slot.clone().unwrap_or_default()) } td { (e.detail) }
            } } }
        } }
    }
}

pub fn requests(
    rows: &[(i64, String, String, String, Option<String>)],
    flash: Option<&str>,
) -> Markup {
    html! {
        @if let Some(flash) = flash { p.note role="status" { (flash) } }
        table {
            thead { tr { th scope="col" { "#" } th scope="col" { "Cabinet" } th scope="col" { "Command" } th scope="col" { "By" } th scope="col" { "Outcome" } } }
            tbody { @for r in rows { tr {
                td { (r.0) } td { (r.1) } td { code { (r.2) } } td { (r.3) }
                td { (r.4.clone().unwrap_or_else(|| "queued — waiting for the station".into())) }
            } } }
        }
    }
}

pub fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}
