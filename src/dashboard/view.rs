//! The dashboard screen as a pure function: [`render`] draws a [`Feed`] and a [`UiState`]
//! into a ratatui frame and does nothing else.
//!
//! No I/O, no clock reads, no mutation: the time to show and to age the instruction
//! against comes in [`UiState::now`], the local time zone in [`UiState::utc_offset`]. That
//! keeps every screen reproducible in tests (TestBackend + insta) and in the benchmark.
//!
//! Readability rules that shape the code: the instruction is drawn in big letters from
//! `font`; no state is told by colour alone (every one has a word and a symbol); only the
//! eight basic colours are used, because the Linux text console has no others; ASCII mode
//! draws without box-drawing or other non-ASCII glyphs and transliterates the daemon's
//! texts, for console fonts that lack them.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset};
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget, Wrap};
use ratatui::Frame;

use crate::checkout::{
    AdminCommand, Instruction, LoanView, MdmView, ReaderView, SlotState, SlotView, Snapshot,
    SyncState, Tone,
};
use crate::dashboard::font::{self, BigText};
use crate::dashboard::{DashboardOptions, Feed};
use crate::domain::Timestamp;

/// How long an instruction stays on the big line before the screen returns to idle.
pub const INSTRUCTION_HOLD_MILLIS: i64 = 20_000;

/// The idle big line, shown when the engine's instruction has aged out.
pub const IDLE_HEADLINE: &str = "Tap your badge";

/// The idle second line.
pub const IDLE_DETAIL: &str = "Dock a phone to return it";

/// What the screen shows besides the feed: the time, display choices and the operator's
/// pending input. The dashboard task owns it; [`render`] only reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiState {
    /// The time to show, and to age the instruction against. Read by the task, never by
    /// the view.
    pub now: Timestamp,
    /// The local time zone's offset from UTC at `now`, used for every time shown.
    pub utc_offset: FixedOffset,
    /// Draw with ASCII only (Linux text console).
    pub ascii: bool,
    /// Admin keys are enabled: show the slot cursor and the admin key hints.
    pub admin: bool,
    /// Demo keys 1–9 tap demo badges: show the hint.
    pub demo_keys: bool,
    /// The slot under the admin cursor, as an index into [`Snapshot::slots`].
    pub selected_slot: usize,
    /// An admin command waiting for the operator to confirm with `y`.
    pub pending: Option<AdminCommand>,
    /// A one-line message for the operator (the answer to the last admin command).
    pub notice: Option<String>,
}

impl UiState {
    /// A fresh state for these options at `now`.
    pub fn new(options: &DashboardOptions, now: Timestamp, utc_offset: FixedOffset) -> UiState {
        UiState {
            now,
            utc_offset,
            ascii: options.ascii,
            admin: options.admin,
            demo_keys: options.demo_keys,
            selected_slot: 0,
            pending: None,
            notice: None,
        }
    }
}

/// Draws the whole screen.
pub fn render(frame: &mut Frame, feed: &Feed, ui: &UiState) {
    let area = frame.area();
    render_into(frame.buffer_mut(), area, feed, ui);
}

/// Draws the whole screen into `buffer` within `area`.
fn render_into(buffer: &mut Buffer, area: Rect, feed: &Feed, ui: &UiState) {
    let screen = Screen::new(ui);
    if area.width < 20 || area.height < 6 {
        let text = screen.text("badgedock: window too small");
        Paragraph::new(text.into_owned())
            .wrap(Wrap { trim: true })
            .draw_into(area, buffer);
        return;
    }
    let header = Rect { height: 2, ..area };
    let footer = Rect {
        y: area.bottom() - 1,
        height: 1,
        ..area
    };
    let body = Rect {
        y: area.y + 2,
        height: area.height - 3,
        ..area
    };
    match feed {
        Feed::Live(snapshot) => {
            screen.live_header(header, buffer, snapshot);
            screen.live_body(body, buffer, snapshot);
        }
        Feed::Down { since, reason } => {
            screen.down_header(header, buffer);
            screen.down_body(body, buffer, *since, reason);
        }
    }
    screen.footer(footer, buffer, feed);
}

/// The instruction to show at `now`: the engine's, or idle once it has aged out.
pub fn effective_instruction(instruction: &Instruction, now: Timestamp) -> (Tone, &str, &str) {
    let aged = now.millis_since(instruction.at) > INSTRUCTION_HOLD_MILLIS;
    if instruction.tone != Tone::Idle && aged {
        (Tone::Idle, IDLE_HEADLINE, IDLE_DETAIL)
    } else {
        (
            instruction.tone,
            instruction.headline.as_str(),
            instruction.detail.as_str(),
        )
    }
}

/// The symbols and borders of one drawing mode.
struct Glyphs {
    /// One pixel of big text.
    pixel: &'static str,
    /// Good: available, ready, done.
    ok: &'static str,
    /// Bad: set aside, failed, offline.
    cross: &'static str,
    /// Needs attention: unreachable, overdue.
    warn: &'static str,
    /// Reserved.
    reserved: &'static str,
    /// Out with a user.
    out: &'static str,
    /// Coming back in.
    checking_in: &'static str,
    /// Under way.
    busy: &'static str,
    /// Nothing there.
    empty: &'static str,
    /// Unknown.
    unknown: &'static str,
    /// The admin cursor.
    cursor: &'static str,
    /// Between header items.
    separator: &'static str,
    /// Between parts of a sentence.
    dash: &'static str,
    /// Marks text cut short.
    ellipsis: &'static str,
    /// Up and down keys.
    up_down: &'static str,
    /// Box borders.
    border: border::Set,
}

const UNICODE: Glyphs = Glyphs {
    pixel: "█",
    ok: "✓",
    cross: "✗",
    warn: "⚠",
    reserved: "◆",
    out: "→",
    checking_in: "↺",
    busy: "…",
    empty: "·",
    unknown: "?",
    cursor: "▶",
    separator: " │ ",
    dash: "—",
    ellipsis: "…",
    up_down: "↑↓",
    border: border::PLAIN,
};

const ASCII: Glyphs = Glyphs {
    pixel: "#",
    ok: "+",
    cross: "X",
    warn: "!",
    reserved: "*",
    out: ">",
    checking_in: "<",
    busy: "~",
    empty: ".",
    unknown: "?",
    cursor: ">",
    separator: " | ",
    dash: "-",
    ellipsis: "..",
    up_down: "Up/Down",
    border: border::Set {
        top_left: "+",
        top_right: "+",
        bottom_left: "+",
        bottom_right: "+",
        vertical_left: "|",
        vertical_right: "|",
        horizontal_top: "-",
        horizontal_bottom: "-",
    },
};

const GREEN: Style = Style::new().fg(Color::Green);
const RED: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
const YELLOW: Style = Style::new().fg(Color::Yellow);
const CYAN: Style = Style::new().fg(Color::Cyan);
const DIM: Style = Style::new().fg(Color::DarkGray);
const BOLD: Style = Style::new().add_modifier(Modifier::BOLD);

/// The colour of a tone. Colour is never the only signal: the tone's word goes with it.
fn tone_style(tone: Tone) -> Style {
    match tone {
        Tone::Idle => Style::new().fg(Color::White),
        Tone::Success => GREEN,
        Tone::Info => CYAN,
        Tone::Error => Style::new().fg(Color::Red),
    }
}

/// One render pass: the UI state plus the glyph set it selects.
struct Screen<'a> {
    ui: &'a UiState,
    glyphs: &'static Glyphs,
}

/// How one slot reads in the grid.
struct SlotLine {
    symbol: &'static str,
    state: String,
    style: Style,
    device: String,
    since: Option<Timestamp>,
    sync: Option<(String, Style)>,
    note: Option<String>,
}

impl<'a> Screen<'a> {
    fn new(ui: &'a UiState) -> Screen<'a> {
        Screen {
            ui,
            glyphs: if ui.ascii { &ASCII } else { &UNICODE },
        }
    }

    /// `text` as it may be drawn: unchanged, or transliterated to ASCII in ASCII mode.
    fn text<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.ui.ascii {
            to_ascii(text, false)
        } else {
            Cow::Borrowed(text)
        }
    }

    fn block(&self, title: Line<'static>) -> Block<'static> {
        Block::new()
            .borders(Borders::ALL)
            .border_set(self.glyphs.border)
            .border_style(DIM)
            .title(title)
    }

    fn local(&self, at: Timestamp) -> Option<DateTime<FixedOffset>> {
        DateTime::from_timestamp_millis(at.0).map(|utc| utc.with_timezone(&self.ui.utc_offset))
    }

    /// The header clock: weekday and time to the second.
    fn clock(&self) -> String {
        self.local(self.ui.now)
            .map(|now| now.format("%a %H:%M:%S").to_string())
            .unwrap_or_default()
    }

    /// A past time, as short as it can be and still unambiguous: `14:02` today,
    /// `Mon 14:02` this week, `12 May 14:02` before.
    fn since(&self, at: Timestamp) -> String {
        let (Some(at_local), Some(now_local)) = (self.local(at), self.local(self.ui.now)) else {
            return String::new();
        };
        let days = (now_local.date_naive() - at_local.date_naive()).num_days();
        let pattern = match days {
            0 => "%H:%M",
            1..=6 => "%a %H:%M",
            _ => "%d %b %H:%M",
        };
        at_local.format(pattern).to_string()
    }

    /// How long ago `at` was: `<1m`, `12m`, `3h05m`, `2d04h`.
    fn age(&self, at: Timestamp) -> String {
        let minutes = self.ui.now.millis_since(at) / 60_000;
        match minutes {
            0 => "<1m".to_string(),
            1..=59 => format!("{minutes}m"),
            60..=1439 => format!("{}h{:02}m", minutes / 60, minutes % 60),
            _ => format!("{}d{:02}h", minutes / 1440, (minutes % 1440) / 60),
        }
    }

    // ---- header -------------------------------------------------------------------

    fn live_header(&self, area: Rect, buffer: &mut Buffer, snapshot: &Snapshot) {
        self.title_bar(area, buffer, &snapshot.station);
        let status = Rect {
            y: area.y + 1,
            height: 1,
            ..area
        };
        let width = usize::from(status.width);
        let line = [false, true]
            .into_iter()
            .map(|compact| self.status_line(snapshot, compact))
            .find(|line| line.width() <= width)
            .unwrap_or_else(|| self.status_line(snapshot, true));
        Paragraph::new(line).draw_into(status, buffer);
    }

    /// The reversed top row: station name left, clock right.
    fn title_bar(&self, area: Rect, buffer: &mut Buffer, station: &str) {
        let bar = Rect { height: 1, ..area };
        let bar_style = Style::new().add_modifier(Modifier::REVERSED);
        buffer.set_style(bar, bar_style);
        let clock = format!("{} ", self.clock());
        let clock_width = u16::try_from(clock.len()).unwrap_or(0);
        let name_width = bar.width.saturating_sub(clock_width + 2);
        let name = fit_width(
            &self.text(station),
            usize::from(name_width),
            self.glyphs.ellipsis,
        );
        buffer.set_stringn(
            bar.x + 1,
            bar.y,
            name,
            usize::from(name_width),
            bar_style.add_modifier(Modifier::BOLD),
        );
        if clock_width < bar.width {
            buffer.set_string(bar.right() - clock_width, bar.y, clock, bar_style);
        }
    }

    /// Readers and Workspace ONE on one line; `compact` shortens every item.
    fn status_line(&self, snapshot: &Snapshot, compact: bool) -> Line<'static> {
        let glyphs = self.glyphs;
        let mut spans = vec![Span::raw(" ")];
        if snapshot.readers.is_empty() {
            spans.push(Span::styled("no badge reader", DIM));
        }
        for (index, reader) in snapshot.readers.iter().enumerate() {
            if index > 0 {
                spans.push(Span::raw(if compact { ", " } else { "  " }));
            }
            spans.extend(self.reader_spans(reader, compact));
        }
        spans.push(Span::styled(glyphs.separator, DIM));
        spans.extend(self.mdm_spans(&snapshot.mdm, compact));
        Line::from(spans)
    }

    fn reader_spans(&self, reader: &ReaderView, compact: bool) -> Vec<Span<'static>> {
        let name = self.text(reader.name.as_str()).into_owned();
        if reader.online {
            let text = if compact {
                format!("{} {name} ready", self.glyphs.ok)
            } else {
                format!("{} Reader {name}: ready", self.glyphs.ok)
            };
            return vec![Span::styled(text, GREEN)];
        }
        // The nurse sees that the reader does not work and whom to call; the cause
        // (`reader.detail`) is for the operator, in `badgedock status`.
        let text = if compact {
            format!("{} {name} OFFLINE", self.glyphs.cross)
        } else {
            format!("{} Reader {name}: not working, call IT", self.glyphs.cross)
        };
        vec![Span::styled(text, RED)]
    }

    fn mdm_spans(&self, mdm: &MdmView, compact: bool) -> Vec<Span<'static>> {
        let glyphs = self.glyphs;
        let waiting = match (mdm.waiting, compact) {
            (0, _) => String::new(),
            (1, false) => format!(" {} 1 action waiting", glyphs.dash),
            (n, false) => format!(" {} {n} actions waiting", glyphs.dash),
            (n, true) => format!(" ({n} waiting)"),
        };
        match mdm.reachable {
            None => vec![Span::styled(
                format!("Workspace ONE: not contacted yet{waiting}"),
                DIM,
            )],
            Some(true) => {
                let style = if mdm.waiting == 0 { GREEN } else { YELLOW };
                vec![Span::styled(
                    format!("{} Workspace ONE OK{waiting}", glyphs.ok),
                    style,
                )]
            }
            Some(false) => vec![Span::styled(
                format!("{} Workspace ONE unreachable{waiting}", glyphs.warn),
                RED,
            )],
        }
    }

    fn down_header(&self, area: Rect, buffer: &mut Buffer) {
        self.title_bar(area, buffer, "badgedock");
        let status = Rect {
            y: area.y + 1,
            height: 1,
            ..area
        };
        let text = format!(
            " {} badgedock daemon is not running {} retrying",
            self.glyphs.cross, self.glyphs.dash
        );
        Paragraph::new(Line::styled(text, RED)).draw_into(status, buffer);
    }

    // ---- body ---------------------------------------------------------------------

    fn live_body(&self, area: Rect, buffer: &mut Buffer, snapshot: &Snapshot) {
        let (tone, headline, detail) = effective_instruction(&snapshot.instruction, self.ui.now);
        let max_rows = instruction_budget(area, snapshot, tone);
        let used = self.instruction(area, buffer, max_rows, tone, headline, detail);
        let rest = Rect {
            y: area.y + used,
            height: area.height.saturating_sub(used),
            ..area
        };
        if rest.height < 3 {
            return;
        }
        let overdue: Vec<&LoanView> = snapshot.loans.iter().filter(|loan| loan.overdue).collect();
        if rest.width >= 120 {
            let slots_width = rest.width * 2 / 3;
            let slots = Rect {
                width: slots_width,
                ..rest
            };
            let side = Rect {
                x: rest.x + slots_width,
                width: rest.width - slots_width,
                ..rest
            };
            self.slot_grid(slots, buffer, snapshot);
            let wanted = u16::try_from(overdue.len().max(1)).unwrap_or(u16::MAX) + 2;
            let overdue_height = wanted.min(side.height / 2).max(3.min(side.height));
            self.overdue_list(
                Rect {
                    height: overdue_height,
                    ..side
                },
                buffer,
                &overdue,
            );
            self.events(
                Rect {
                    y: side.y + overdue_height,
                    height: side.height - overdue_height,
                    ..side
                },
                buffer,
                snapshot,
            );
        } else {
            // Narrow: the grid on top, overdue and events side by side below it.
            let wanted = u16::try_from(snapshot.slots.len()).unwrap_or(u16::MAX) + 3;
            let lower_min = 5;
            let slots_height = if rest.height >= wanted + lower_min {
                wanted
            } else {
                rest.height
                    .saturating_sub(lower_min)
                    .max(rest.height.min(6))
            };
            self.slot_grid(
                Rect {
                    height: slots_height,
                    ..rest
                },
                buffer,
                snapshot,
            );
            let lower = Rect {
                y: rest.y + slots_height,
                height: rest.height - slots_height,
                ..rest
            };
            if lower.height >= 3 {
                // Overdue loans need the room more than the event history does.
                let half = if overdue.is_empty() {
                    lower.width / 3
                } else {
                    lower.width * 3 / 5
                };
                self.overdue_list(
                    Rect {
                        width: half,
                        ..lower
                    },
                    buffer,
                    &overdue,
                );
                self.events(
                    Rect {
                        x: lower.x + half,
                        width: lower.width - half,
                        ..lower
                    },
                    buffer,
                    snapshot,
                );
            }
        }
    }

    /// Draws the instruction block at the top of `area` in at most `max_rows` rows and
    /// returns the rows used: a title row with the tone's word, the big headline, and the
    /// detail line.
    fn instruction(
        &self,
        area: Rect,
        buffer: &mut Buffer,
        max_rows: u16,
        tone: Tone,
        headline: &str,
        detail: &str,
    ) -> u16 {
        let glyphs = self.glyphs;
        let style = tone_style(tone);
        let inner_width = area.width.saturating_sub(2);
        let content_rows = max_rows
            .saturating_sub(2)
            .min(area.height.saturating_sub(2));
        let big_source = to_ascii(headline, true);
        let big = font::fit(&big_source, inner_width, content_rows, !self.ui.ascii);
        let plain_headline = self.text(headline);
        let plain_lines = match &big {
            Some(_) => Vec::new(),
            None => font::wrap(&plain_headline, usize::from(inner_width), &|text| {
                Span::raw(text).width()
            })
            .unwrap_or_else(|| vec![plain_headline.to_string()]),
        };
        let content_height = match &big {
            Some(text) => text.height(),
            None => u16::try_from(plain_lines.len())
                .unwrap_or(u16::MAX)
                .min(content_rows.max(1)),
        };
        let height = (content_height + 2).min(area.height);

        // Title row: the tone's word, and the headline in plain text beside it so it can
        // be read (and searched, by tests and screen readers) whatever the big letters.
        let tag = match tone {
            Tone::Idle => " READY ".to_string(),
            Tone::Success => format!(" {} OK ", glyphs.ok),
            Tone::Info => " i NOTE ".to_string(),
            Tone::Error => format!(" {} PROBLEM ", glyphs.cross),
        };
        let mut title = vec![Span::styled(
            tag,
            style.add_modifier(Modifier::REVERSED | Modifier::BOLD),
        )];
        if big.is_some() {
            title.push(Span::styled(
                format!(" {plain_headline} "),
                style.add_modifier(Modifier::BOLD),
            ));
        }
        let block = Block::new()
            .borders(Borders::TOP)
            .border_set(glyphs.border)
            .border_style(DIM)
            .title(Line::from(title));
        let block_area = Rect { height, ..area };
        block.draw_into(block_area, buffer);

        let content = Rect {
            x: area.x + 1,
            y: area.y + 1,
            width: inner_width,
            height: content_height.min(height.saturating_sub(1)),
        };
        match &big {
            Some(text) => self.big_text(text, content, buffer, style),
            None => {
                // Too little room for big letters: a solid band in the tone's colour, so
                // news still stands out from across the room.
                let band = match tone {
                    Tone::Idle => style.add_modifier(Modifier::BOLD),
                    _ => style.add_modifier(Modifier::BOLD | Modifier::REVERSED),
                };
                buffer.set_style(content.intersection(buffer.area), band);
                let lines: Vec<Line> = plain_lines
                    .into_iter()
                    .map(|line| Line::styled(line, band))
                    .collect();
                Paragraph::new(lines)
                    .alignment(Alignment::Center)
                    .draw_into(content, buffer);
            }
        }
        if height >= content_height + 2 {
            let detail_area = Rect {
                x: area.x + 1,
                y: content.y + content_height,
                width: inner_width,
                height: 1,
            };
            Paragraph::new(Line::raw(self.text(detail).into_owned()))
                .alignment(Alignment::Center)
                .draw_into(detail_area, buffer);
        }
        height
    }

    fn big_text(&self, text: &BigText, area: Rect, buffer: &mut Buffer, style: Style) {
        text.render(area, buffer, style, self.glyphs.pixel);
    }

    fn slot_grid(&self, area: Rect, buffer: &mut Buffer, snapshot: &Snapshot) {
        let n_slots = snapshot.slots.len();
        let title = Line::from(vec![
            Span::styled(" Slots ", BOLD),
            Span::styled(format!("({} reserved) ", snapshot.open_reservations), DIM),
        ]);
        let block = self.block(title);
        let inner = block.inner(area);
        block.draw_into(area, buffer);
        if inner.height < 2 || inner.width < 8 {
            return;
        }
        if n_slots == 0 {
            Paragraph::new(Line::styled("No slots configured", DIM)).draw_into(inner, buffer);
            return;
        }
        // Slots flow into as many columns as the height requires, each at least
        // `MIN_COLUMN` wide; what still does not fit is counted on the last row.
        const MIN_COLUMN: u16 = 16;
        let rows_per_column = usize::from(inner.height - 1);
        let n_columns_wanted = n_slots.div_ceil(rows_per_column.max(1));
        let n_columns_possible = usize::from((inner.width / MIN_COLUMN).max(1));
        let n_columns = n_columns_wanted.min(n_columns_possible).max(1);
        let capacity = n_columns * rows_per_column;
        let n_hidden = n_slots.saturating_sub(capacity);
        let n_shown = if n_hidden > 0 {
            capacity.saturating_sub(1)
        } else {
            n_slots
        };
        let n_columns_u16 = u16::try_from(n_columns).unwrap_or(1);
        let column_width = inner.width / n_columns_u16;
        for column in 0..n_columns {
            let column_u16 = u16::try_from(column).unwrap_or(0);
            let column_area = Rect {
                x: inner.x + column_u16 * column_width,
                width: if column + 1 == n_columns {
                    inner.width - column_u16 * column_width
                } else {
                    column_width.saturating_sub(1)
                },
                ..inner
            };
            let widths = ColumnWidths::for_width(column_area.width);
            let mut lines = vec![self.slot_header(&widths)];
            let first = column * rows_per_column;
            let last = (first + rows_per_column).min(n_shown);
            for index in first..last {
                let slot = &snapshot.slots[index];
                let selected = self.ui.admin && index == self.ui.selected_slot;
                lines.push(self.slot_row(slot, &snapshot.loans, &widths, selected));
            }
            if n_hidden > 0 && column + 1 == n_columns {
                lines.push(Line::styled(
                    format!("+{} more slots (enlarge the window)", n_hidden + 1),
                    DIM,
                ));
            }
            Paragraph::new(lines).draw_into(column_area, buffer);
        }
    }

    fn slot_header(&self, widths: &ColumnWidths) -> Line<'static> {
        let mut text = pad("Slot", widths.label + 2);
        if widths.device > 0 {
            text.push_str(&pad("Device", widths.device + 1));
        }
        text.push_str(&pad("State", widths.state));
        if widths.since > 0 {
            text.push(' ');
            text.push_str(&pad("Since", widths.since));
        }
        if widths.sync > 0 {
            text.push(' ');
            text.push_str(&pad("Workspace ONE", widths.sync));
        }
        Line::styled(text, DIM.add_modifier(Modifier::UNDERLINED))
    }

    fn slot_row(
        &self,
        slot: &SlotView,
        loans: &[LoanView],
        widths: &ColumnWidths,
        selected: bool,
    ) -> Line<'static> {
        let glyphs = self.glyphs;
        let described = self.describe_slot(slot, loans);
        let mut spans = Vec::with_capacity(8);
        let cursor = if selected { glyphs.cursor } else { " " };
        let label = fit_width(
            &self.text(slot.label.as_str()),
            widths.label,
            glyphs.ellipsis,
        );
        let label_style = if selected {
            BOLD.add_modifier(Modifier::REVERSED)
        } else {
            BOLD
        };
        spans.push(Span::raw(cursor));
        spans.push(Span::styled(
            format!("{label:>width$}", width = widths.label),
            label_style,
        ));
        spans.push(Span::raw(" "));
        if widths.device > 0 {
            let device = fit_width(&described.device, widths.device, glyphs.ellipsis);
            spans.push(Span::raw(pad(&device, widths.device + 1)));
        }
        let mut state = format!("{} {}", described.symbol, described.state);
        // Narrow columns have no sync column: a sync problem joins the state instead.
        if widths.sync == 0 {
            if let Some((sync, _)) = &described.sync {
                state.push_str(", ");
                state.push_str(sync);
            }
        }
        let state = fit_width(&state, widths.state, glyphs.ellipsis);
        spans.push(Span::styled(pad(&state, widths.state), described.style));
        if widths.since > 0 {
            let since = described
                .since
                .map(|at| {
                    let long = format!("{} ({})", self.since(at), self.age(at));
                    if long.len() <= widths.since {
                        long
                    } else {
                        self.since(at)
                    }
                })
                .unwrap_or_default();
            spans.push(Span::raw(" "));
            spans.push(Span::raw(pad(
                &fit_width(&since, widths.since, ""),
                widths.since,
            )));
        }
        if widths.sync > 0 {
            if let Some((sync, style)) = described.sync {
                let mut text = sync;
                if let Some(note) = &described.note {
                    text.push_str(": ");
                    text.push_str(note);
                }
                spans.push(Span::raw(" "));
                spans.push(Span::styled(
                    fit_width(&text, widths.sync, glyphs.ellipsis),
                    style,
                ));
            }
        }
        Line::from(spans)
    }

    /// What a slot shows, in words, with its symbol and colour. An empty slot whose
    /// device is out with someone shows that loan.
    fn describe_slot(&self, slot: &SlotView, loans: &[LoanView]) -> SlotLine {
        let glyphs = self.glyphs;
        let holder = slot
            .holder
            .as_deref()
            .map(|holder| self.text(holder).into_owned());
        let device = slot
            .device_name
            .as_deref()
            .map(|name| self.text(name).into_owned())
            .or_else(|| {
                slot.device
                    .as_ref()
                    .map(|key| self.text(&key.id).into_owned())
            })
            .unwrap_or_else(|| glyphs.dash.to_string());
        let sync = match slot.sync {
            SyncState::Synced => None,
            SyncState::Pending => Some((format!("{} sync pending", glyphs.busy), YELLOW)),
            SyncState::Failed => Some((format!("{} sync FAILED", glyphs.cross), RED)),
        };
        let note = match slot.sync {
            SyncState::Synced => None,
            _ => slot
                .note
                .as_deref()
                .map(|note| self.text(note).into_owned()),
        };
        let base = SlotLine {
            symbol: glyphs.empty,
            state: String::new(),
            style: Style::new(),
            device,
            since: slot.since,
            sync,
            note,
        };
        match slot.state {
            SlotState::Empty => match loans.iter().find(|loan| loan.slot == slot.label) {
                Some(loan) => {
                    let holder = self.text(&loan.holder).into_owned();
                    let device = loan
                        .device_name
                        .as_deref()
                        .map(|name| self.text(name).into_owned())
                        .unwrap_or_else(|| self.text(&loan.device.id).into_owned());
                    let sync = match loan.sync {
                        SyncState::Synced => None,
                        SyncState::Pending => {
                            Some((format!("{} sync pending", glyphs.busy), YELLOW))
                        }
                        SyncState::Failed => Some((format!("{} sync FAILED", glyphs.cross), RED)),
                    };
                    if loan.overdue {
                        SlotLine {
                            symbol: glyphs.warn,
                            state: format!("OVERDUE with {holder}"),
                            style: RED,
                            device,
                            since: Some(loan.since),
                            sync,
                            note: None,
                        }
                    } else {
                        SlotLine {
                            symbol: glyphs.out,
                            state: format!("out with {holder}"),
                            style: Style::new(),
                            device,
                            since: Some(loan.since),
                            sync,
                            note: None,
                        }
                    }
                }
                None => SlotLine {
                    state: "empty".to_string(),
                    style: DIM,
                    since: None,
                    ..base
                },
            },
            SlotState::Identifying => SlotLine {
                symbol: glyphs.busy,
                state: "identifying".to_string(),
                style: CYAN,
                ..base
            },
            SlotState::Available => SlotLine {
                symbol: glyphs.ok,
                state: "available".to_string(),
                style: GREEN,
                ..base
            },
            SlotState::Reserved => SlotLine {
                symbol: glyphs.reserved,
                state: match &holder {
                    Some(holder) => format!("reserved for {holder}"),
                    None => "reserved".to_string(),
                },
                style: YELLOW.add_modifier(Modifier::BOLD),
                ..base
            },
            SlotState::CheckingIn => SlotLine {
                symbol: glyphs.checking_in,
                state: match &holder {
                    Some(holder) => format!("checking in from {holder}"),
                    None => "checking in".to_string(),
                },
                style: CYAN,
                ..base
            },
            SlotState::SetAside => SlotLine {
                symbol: glyphs.cross,
                state: "SET ASIDE (needs IT)".to_string(),
                style: RED,
                ..base
            },
            SlotState::Broken => SlotLine {
                symbol: glyphs.cross,
                state: "BROKEN (out of use until repaired)".to_string(),
                style: RED,
                ..base
            },
            SlotState::Unidentified => SlotLine {
                symbol: glyphs.unknown,
                state: "unknown to Workspace ONE".to_string(),
                style: YELLOW,
                ..base
            },
            SlotState::Foreign => SlotLine {
                symbol: glyphs.cross,
                state: "NOT A CABINET PHONE (left alone)".to_string(),
                style: RED,
                ..base
            },
            SlotState::Erasing => SlotLine {
                symbol: glyphs.checking_in,
                state: "erased, waiting to enrol again".to_string(),
                style: CYAN,
                ..base
            },
        }
    }

    fn overdue_list(&self, area: Rect, buffer: &mut Buffer, overdue: &[&LoanView]) {
        let glyphs = self.glyphs;
        let title_style = if overdue.is_empty() { BOLD } else { RED };
        let block = self.block(Line::styled(
            format!(" Overdue ({}) ", overdue.len()),
            title_style,
        ));
        let inner = block.inner(area);
        block.draw_into(area, buffer);
        let lines: Vec<Line> = if overdue.is_empty() {
            vec![Line::styled(
                format!("{} no phone overdue", glyphs.ok),
                GREEN,
            )]
        } else {
            overdue
                .iter()
                .map(|loan| {
                    let device = loan
                        .device_name
                        .as_deref()
                        .unwrap_or(loan.device.id.as_str());
                    let due = loan
                        .due_text
                        .as_deref()
                        .map(|due| format!(", due {}", self.text(due)))
                        .unwrap_or_default();
                    Line::from(vec![
                        Span::styled(format!("{} {}", glyphs.warn, self.text(&loan.holder)), RED),
                        Span::raw(format!(
                            ", slot {}{due}, out since {} ({}) {} {}",
                            self.text(loan.slot.as_str()),
                            self.since(loan.since),
                            self.age(loan.since),
                            glyphs.dash,
                            self.text(device),
                        )),
                    ])
                })
                .collect()
        };
        Paragraph::new(lines).draw_into(inner, buffer);
    }

    fn events(&self, area: Rect, buffer: &mut Buffer, snapshot: &Snapshot) {
        let block = self.block(Line::styled(" Recent events ", BOLD));
        let inner = block.inner(area);
        block.draw_into(area, buffer);
        let lines: Vec<Line> = if snapshot.events.is_empty() {
            vec![Line::styled("nothing yet", DIM)]
        } else {
            snapshot
                .events
                .iter()
                .take(usize::from(inner.height))
                .map(|event| {
                    let time = self
                        .local(event.at)
                        .map(|at| at.format("%H:%M:%S").to_string())
                        .unwrap_or_default();
                    Line::from(vec![
                        Span::styled(time, DIM),
                        Span::raw(" "),
                        Span::raw(self.text(&event.text).into_owned()),
                    ])
                })
                .collect()
        };
        Paragraph::new(lines).draw_into(inner, buffer);
    }

    fn down_body(&self, area: Rect, buffer: &mut Buffer, since: Timestamp, reason: &str) {
        let max_rows = (area.height * 2 / 5).max(4);
        let used = self.instruction(
            area,
            buffer,
            max_rows,
            Tone::Error,
            "Station offline",
            "Phones cannot be checked out right now. Call IT support if this lasts.",
        );
        // Three lines of text, room for the error to wrap, and the border.
        let rest = Rect {
            y: area.y + used,
            height: area.height.saturating_sub(used).min(8),
            ..area
        };
        let block = self.block(Line::styled(" badgedock daemon ", BOLD));
        let inner = block.inner(rest);
        block.draw_into(rest, buffer);
        let lines = vec![
            Line::styled(
                format!(
                    "{} badgedock daemon is not running {} retrying",
                    self.glyphs.cross, self.glyphs.dash
                ),
                RED,
            ),
            Line::raw(format!(
                "Down since {} ({} ago).",
                self.since(since),
                self.age(since)
            )),
            Line::raw(format!("Last error: {}", self.text(reason))),
        ];
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .draw_into(inner, buffer);
    }

    // ---- footer -------------------------------------------------------------------

    fn footer(&self, area: Rect, buffer: &mut Buffer, feed: &Feed) {
        if let Some(command) = &self.ui.pending {
            let (slot, question) = match command {
                AdminCommand::Retry { slot } => {
                    (slot, "retry its failed work and put it back in use?")
                }
                AdminCommand::CancelReservation { slot } => (slot, "cancel the reservation?"),
                AdminCommand::MarkBroken { slot } => {
                    (slot, "mark the phone broken (out of use, repair ticket)?")
                }
                AdminCommand::ClearBroken { slot } => (slot, "repaired: put it back in use?"),
                // Not offered by the dashboard's keys; sent with `badgedock admin`.
                AdminCommand::CloseLoan { .. } | AdminCommand::MarkLost { .. } => {
                    return;
                }
            };
            let text = format!(
                " Slot {}: {question} y = yes, n = no",
                self.text(slot.as_str())
            );
            let style = Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD);
            buffer.set_style(area, style);
            Paragraph::new(Line::styled(text, style)).draw_into(area, buffer);
            return;
        }
        let mut hints = vec![" q quit".to_string()];
        if self.ui.demo_keys && matches!(feed, Feed::Live(_)) {
            hints.push("1-9 tap a demo badge".to_string());
        }
        if self.ui.admin && matches!(feed, Feed::Live(_)) {
            hints.push(format!("{} choose slot", self.glyphs.up_down));
            hints.push("r retry".to_string());
            hints.push("c cancel reservation".to_string());
            hints.push("b broken".to_string());
        }
        let hints = hints.join("   ");
        Paragraph::new(Line::styled(hints, DIM)).draw_into(area, buffer);
        if let Some(notice) = &self.ui.notice {
            let notice = format!("{} ", self.text(notice));
            let width = u16::try_from(Span::raw(notice.as_str()).width()).unwrap_or(u16::MAX);
            let width = width.min(area.width);
            let notice_area = Rect {
                x: area.right() - width,
                width,
                ..area
            };
            Paragraph::new(Line::styled(notice, BOLD))
                .alignment(Alignment::Right)
                .draw_into(notice_area, buffer);
        }
    }
}

/// Rows the instruction block may take in `body`: what the grid and lists leave over,
/// but never less than two fifths of the body for news (the tap's answer matters most
/// right after the tap) and never more than a third for the idle line.
fn instruction_budget(body: Rect, snapshot: &Snapshot, tone: Tone) -> u16 {
    let n_slots = u16::try_from(snapshot.slots.len()).unwrap_or(u16::MAX);
    let grid = n_slots.saturating_add(3);
    let rest_needs = if body.width >= 120 {
        grid.max(10)
    } else {
        grid.saturating_add(5)
    };
    let spare = body.height.saturating_sub(rest_needs);
    let (least, most) = match tone {
        Tone::Idle => (body.height / 5, body.height / 3),
        _ => (body.height * 2 / 5, body.height / 2),
    };
    spare.clamp(least.max(3), most.max(3))
}

/// Column widths of one slot column, chosen by the space it has.
struct ColumnWidths {
    label: usize,
    device: usize,
    state: usize,
    since: usize,
    sync: usize,
}

impl ColumnWidths {
    fn for_width(width: u16) -> ColumnWidths {
        let width = usize::from(width);
        let label = 3;
        // The label column is the cursor, the label and a space.
        let fixed = label + 2;
        if width >= 100 {
            // Wide: the state gets what it needs and the rest goes to Workspace ONE's
            // note, which explains failures.
            let (device, since) = (20, 18);
            let remaining = width.saturating_sub(fixed + device + 1 + since + 1);
            let state = remaining.saturating_sub(18).min(36);
            return ColumnWidths {
                label,
                device,
                state,
                since,
                sync: remaining.saturating_sub(state + 1),
            };
        }
        let (device, since, sync) = if width >= 74 {
            (15, 13, 15)
        } else if width >= 56 {
            (0, 13, 15)
        } else if width >= 40 {
            (0, 13, 0)
        } else {
            (0, 0, 0)
        };
        let used = fixed
            + if device > 0 { device + 1 } else { 0 }
            + if since > 0 { since + 1 } else { 0 }
            + if sync > 0 { sync + 1 } else { 0 };
        ColumnWidths {
            label,
            device,
            state: width.saturating_sub(used).max(1),
            since,
            sync,
        }
    }
}

/// A small extension so widgets can be drawn straight into a buffer by reference.
trait DrawInto {
    fn draw_into(self, area: Rect, buffer: &mut Buffer);
}

impl<W: Widget> DrawInto for W {
    fn draw_into(self, area: Rect, buffer: &mut Buffer) {
        // Never draw outside the buffer: ratatui panics on out-of-range cells.
        let area = area.intersection(buffer.area);
        if area.is_empty() {
            return;
        }
        self.render(area, buffer);
    }
}

/// `text` padded with spaces to `width` cells (never cut).
fn pad(text: &str, width: usize) -> String {
    let text_width = Span::raw(text).width();
    let mut padded = String::with_capacity(text.len() + width.saturating_sub(text_width));
    padded.push_str(text);
    padded.extend(std::iter::repeat_n(' ', width.saturating_sub(text_width)));
    padded
}

/// `text` cut to at most `width` cells, ending with `ellipsis` when cut.
fn fit_width(text: &str, width: usize, ellipsis: &str) -> String {
    if Span::raw(text).width() <= width {
        return text.to_string();
    }
    let ellipsis_width = Span::raw(ellipsis).width();
    let budget = width.saturating_sub(ellipsis_width);
    let mut cut = String::new();
    let mut used = 0;
    let mut scratch = [0u8; 4];
    for c in text.chars() {
        let char_width = Span::raw(&*c.encode_utf8(&mut scratch)).width();
        if used + char_width > budget {
            break;
        }
        used += char_width;
        cut.push(c);
    }
    if width >= ellipsis_width {
        cut.push_str(ellipsis);
    }
    cut
}

/// `text` in plain ASCII: dashes, quotes and ellipses by their ASCII forms, accented
/// Latin letters by their base letters, anything else by `?`. With `keep_dashes`, em and
/// en dashes stay (the big font has them and wraps at them).
pub fn to_ascii(text: &str, keep_dashes: bool) -> Cow<'_, str> {
    if text.is_ascii() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
            continue;
        }
        let replacement: &str = match c {
            '—' | '–' if keep_dashes => {
                out.push(c);
                continue;
            }
            '—' | '–' | '−' | '‐' => "-",
            '…' => "...",
            '‘' | '’' | '‚' | '′' => "'",
            '“' | '”' | '„' | '″' => "\"",
            '·' | '•' => "*",
            '→' => "->",
            '←' => "<-",
            '\u{a0}' | '\u{2009}' | '\u{202f}' => " ",
            'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' | 'Ā' | 'Ą' => "A",
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ą' => "a",
            'Ç' | 'Ć' | 'Č' => "C",
            'ç' | 'ć' | 'č' => "c",
            'Ď' | 'Đ' => "D",
            'ď' | 'đ' => "d",
            'È' | 'É' | 'Ê' | 'Ë' | 'Ē' | 'Ę' | 'Ě' => "E",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
            'Ì' | 'Í' | 'Î' | 'Ï' | 'Ī' | 'İ' => "I",
            'ì' | 'í' | 'î' | 'ï' | 'ī' | 'ı' => "i",
            'Ł' => "L",
            'ł' => "l",
            'Ñ' | 'Ń' | 'Ň' => "N",
            'ñ' | 'ń' | 'ň' => "n",
            'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' | 'Ō' | 'Ő' => "O",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
            'Ř' => "R",
            'ř' => "r",
            'Ś' | 'Š' | 'Ş' => "S",
            'ś' | 'š' | 'ş' => "s",
            'Ť' | 'Ţ' => "T",
            'ť' | 'ţ' => "t",
            'Ù' | 'Ú' | 'Û' | 'Ü' | 'Ū' | 'Ů' | 'Ű' => "U",
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
            'Ý' | 'Ÿ' => "Y",
            'ý' | 'ÿ' => "y",
            'Ź' | 'Ż' | 'Ž' => "Z",
            'ź' | 'ż' | 'ž' => "z",
            'ß' => "ss",
            'Æ' => "AE",
            'æ' => "ae",
            'Œ' => "OE",
            'œ' => "oe",
            _ => "?",
        };
        out.push_str(replacement);
    }
    Cow::Owned(out)
}
