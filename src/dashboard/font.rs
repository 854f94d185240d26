//! Large block letters for the instruction line, so a nurse can read it from two metres.
//!
//! The font is our own: five pixel rows, glyphs three to five pixels wide, for A–Z, 0–9
//! and the punctuation that turns up in names and instructions. Lower-case text is drawn
//! in capitals. A pixel is drawn as one of several [`Scale`]s, from two cells wide down
//! to half a cell tall (Unicode half blocks); [`fit`] picks the largest one that fits the
//! space, and the caller falls back to plain bold text when none does.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

/// Pixel rows in every glyph.
pub const GLYPH_ROWS: u16 = 5;

/// How one font pixel maps onto terminal cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// A pixel is two cells wide and one row tall: roughly square, and large.
    Wide,
    /// A pixel is one cell: tall, narrow letters.
    Full,
    /// A pixel is one cell wide and half a row tall (`▀▄█`): square and small.
    /// Needs Unicode block glyphs, so never used in ASCII mode.
    Half,
}

impl Scale {
    /// Cells per pixel horizontally.
    fn columns_per_pixel(self) -> u16 {
        match self {
            Scale::Wide => 2,
            Scale::Full | Scale::Half => 1,
        }
    }

    /// Terminal rows one line of big text takes.
    pub fn rows_per_line(self) -> u16 {
        match self {
            Scale::Wide | Scale::Full => GLYPH_ROWS,
            // Five half-rows round up to three rows; the sixth half-row is the gap.
            Scale::Half => GLYPH_ROWS.div_ceil(2),
        }
    }

    /// Blank rows between two lines of big text.
    fn rows_between_lines(self) -> u16 {
        match self {
            Scale::Wide | Scale::Full => 1,
            Scale::Half => 0,
        }
    }

    /// Terminal rows `n_lines` lines of big text take, gaps included.
    pub fn height(self, n_lines: usize) -> u16 {
        let n_lines = u16::try_from(n_lines).unwrap_or(u16::MAX);
        if n_lines == 0 {
            return 0;
        }
        n_lines
            .saturating_mul(self.rows_per_line())
            .saturating_add((n_lines - 1).saturating_mul(self.rows_between_lines()))
    }
}

/// Big text laid out for a given space: the scale and the wrapped lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigText {
    /// How pixels are drawn.
    pub scale: Scale,
    /// The lines, already wrapped to the width.
    pub lines: Vec<String>,
}

impl BigText {
    /// Terminal rows the text takes.
    pub fn height(&self) -> u16 {
        self.scale.height(self.lines.len())
    }

    /// Draws the text centred horizontally in `area`, from its top row. Pixels get
    /// `style`; `pixel` is the full-cell symbol (`█`, or `#` in ASCII mode).
    pub fn render(&self, area: Rect, buffer: &mut Buffer, style: Style, pixel: &str) {
        let mut y = area.y;
        for line in &self.lines {
            if y.saturating_add(self.scale.rows_per_line()) > area.bottom() {
                break;
            }
            let width = text_width(line, self.scale);
            let x = area.x + area.width.saturating_sub(width) / 2;
            draw_line(line, self.scale, x, y, area, buffer, style, pixel);
            y = y
                .saturating_add(self.scale.rows_per_line())
                .saturating_add(self.scale.rows_between_lines());
        }
    }
}

/// Picks the largest scale at which `headline` fits in `width` × `max_rows` cells, and
/// wraps it for that scale. `Half` is only tried when `unicode` is true. `None` when the
/// text does not fit even at the smallest scale.
pub fn fit(headline: &str, width: u16, max_rows: u16, unicode: bool) -> Option<BigText> {
    let scales: &[Scale] = if unicode {
        &[Scale::Wide, Scale::Full, Scale::Half]
    } else {
        &[Scale::Wide, Scale::Full]
    };
    scales.iter().find_map(|scale| {
        let lines = wrap(headline, usize::from(width), &|text| {
            usize::from(text_width(text, *scale))
        })?;
        (scale.height(lines.len()) <= max_rows).then_some(BigText {
            scale: *scale,
            lines,
        })
    })
}

/// Wraps `text` into lines no wider than `width` as measured by `measure`.
///
/// The whole text stays on one line when it fits. Otherwise it is first cut at its
/// em-dashes ("ALICE MARTIN — TAKE SLOT 3" becomes two lines, without the dash), and each
/// part is wrapped at spaces. `None` when a single word is wider than `width`.
pub fn wrap(text: &str, width: usize, measure: &dyn Fn(&str) -> usize) -> Option<Vec<String>> {
    let text = text.trim();
    if measure(text) <= width {
        return Some(vec![text.to_string()]);
    }
    let mut lines = Vec::new();
    for part in text
        .split(['—', '–'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let mut current = String::new();
        for word in part.split_whitespace() {
            if measure(word) > width {
                return None;
            }
            if current.is_empty() {
                current.push_str(word);
                continue;
            }
            let candidate = format!("{current} {word}");
            if measure(&candidate) <= width {
                current = candidate;
            } else {
                lines.push(std::mem::replace(&mut current, word.to_string()));
            }
        }
        if !current.is_empty() {
            lines.push(current);
        }
    }
    Some(lines)
}

/// Cells `text` takes at `scale`, one blank pixel column between glyphs.
pub fn text_width(text: &str, scale: Scale) -> u16 {
    let pixels: usize = text.chars().map(|c| glyph(c)[0].len() + 1).sum();
    let pixels = u16::try_from(pixels.saturating_sub(1)).unwrap_or(u16::MAX);
    pixels.saturating_mul(scale.columns_per_pixel())
}

#[allow(clippy::too_many_arguments)]
fn draw_line(
    line: &str,
    scale: Scale,
    x: u16,
    y: u16,
    area: Rect,
    buffer: &mut Buffer,
    style: Style,
    pixel: &str,
) {
    let mut x = x;
    let step = scale.columns_per_pixel();
    for c in line.chars() {
        let rows = glyph(c);
        let glyph_width = u16::try_from(rows[0].len()).unwrap_or(0);
        for column in 0..glyph_width {
            let cell_x = x.saturating_add(column.saturating_mul(step));
            for row in 0..scale.rows_per_line() {
                let symbol = match scale {
                    Scale::Wide | Scale::Full => lit(rows, row, column).then_some(pixel),
                    Scale::Half => {
                        let top = lit(rows, row * 2, column);
                        let bottom = lit(rows, row * 2 + 1, column);
                        match (top, bottom) {
                            (true, true) => Some("█"),
                            (true, false) => Some("▀"),
                            (false, true) => Some("▄"),
                            (false, false) => None,
                        }
                    }
                };
                let Some(symbol) = symbol else { continue };
                for offset in 0..step {
                    let position = (cell_x.saturating_add(offset), y.saturating_add(row));
                    if position.0 >= area.right() || position.1 >= area.bottom() {
                        continue;
                    }
                    if let Some(cell) = buffer.cell_mut(position) {
                        cell.set_symbol(symbol).set_style(style);
                    }
                }
            }
        }
        x = x.saturating_add((glyph_width + 1).saturating_mul(step));
    }
}

/// True when pixel (`row`, `column`) of a glyph is set; rows past the glyph are blank.
fn lit(rows: &[&str; 5], row: u16, column: u16) -> bool {
    rows.get(usize::from(row))
        .and_then(|text| text.as_bytes().get(usize::from(column)))
        .is_some_and(|byte| *byte == b'#')
}

/// The pixel rows of `c` (`#` set, `.` clear). Letters are drawn as capitals; anything
/// the font lacks is drawn as `?` (callers transliterate accents first).
fn glyph(c: char) -> &'static [&'static str; 5] {
    match c.to_ascii_uppercase() {
        'A' => &[".##.", "#..#", "####", "#..#", "#..#"],
        'B' => &["###.", "#..#", "###.", "#..#", "###."],
        'C' => &[".###", "#...", "#...", "#...", ".###"],
        'D' => &["###.", "#..#", "#..#", "#..#", "###."],
        'E' => &["####", "#...", "###.", "#...", "####"],
        'F' => &["####", "#...", "###.", "#...", "#..."],
        'G' => &[".###", "#...", "#.##", "#..#", ".###"],
        'H' => &["#..#", "#..#", "####", "#..#", "#..#"],
        'I' => &["###", ".#.", ".#.", ".#.", "###"],
        'J' => &["...#", "...#", "...#", "#..#", ".##."],
        'K' => &["#..#", "#.#.", "##..", "#.#.", "#..#"],
        'L' => &["#...", "#...", "#...", "#...", "####"],
        'M' => &["#...#", "##.##", "#.#.#", "#...#", "#...#"],
        'N' => &["#..#", "##.#", "#.##", "#..#", "#..#"],
        'O' => &[".###.", "#...#", "#...#", "#...#", ".###."],
        'P' => &["###.", "#..#", "###.", "#...", "#..."],
        'Q' => &[".###.", "#...#", "#.#.#", "#..#.", ".##.#"],
        'R' => &["###.", "#..#", "###.", "#.#.", "#..#"],
        'S' => &[".###", "#...", ".##.", "...#", "###."],
        'T' => &["#####", "..#..", "..#..", "..#..", "..#.."],
        'U' => &["#..#", "#..#", "#..#", "#..#", ".##."],
        'V' => &["#...#", "#...#", "#...#", ".#.#.", "..#.."],
        'W' => &["#...#", "#...#", "#.#.#", "##.##", "#...#"],
        'X' => &["#...#", ".#.#.", "..#..", ".#.#.", "#...#"],
        'Y' => &["#...#", ".#.#.", "..#..", "..#..", "..#.."],
        'Z' => &["####", "...#", ".##.", "#...", "####"],
        '0' => &[".##.", "#..#", "#..#", "#..#", ".##."],
        '1' => &[".#.", "##.", ".#.", ".#.", "###"],
        '2' => &["###.", "...#", ".##.", "#...", "####"],
        '3' => &["###.", "...#", ".##.", "...#", "###."],
        '4' => &["#..#", "#..#", "####", "...#", "...#"],
        '5' => &["####", "#...", "###.", "...#", "###."],
        '6' => &[".##.", "#...", "###.", "#..#", ".##."],
        '7' => &["####", "...#", "..#.", ".#..", ".#.."],
        '8' => &[".##.", "#..#", ".##.", "#..#", ".##."],
        '9' => &[".##.", "#..#", ".###", "...#", ".##."],
        ' ' => &["..", "..", "..", "..", ".."],
        '-' | '–' => &["...", "...", "###", "...", "..."],
        '—' => &["....", "....", "####", "....", "...."],
        '.' => &[".", ".", ".", ".", "#"],
        ',' => &["..", "..", "..", ".#", "#."],
        ':' => &[".", "#", ".", "#", "."],
        ';' => &["..", ".#", "..", ".#", "#."],
        '!' => &["#", "#", "#", ".", "#"],
        '\'' | '’' => &["#", "#", ".", ".", "."],
        '"' => &["#.#", "#.#", "...", "...", "..."],
        '/' => &["..#", "..#", ".#.", "#..", "#.."],
        '(' => &[".#", "#.", "#.", "#.", ".#"],
        ')' => &["#.", ".#", ".#", ".#", "#."],
        '+' => &["...", ".#.", "###", ".#.", "..."],
        '#' => &[".#.#.", "#####", ".#.#.", "#####", ".#.#."],
        '&' => &[".##..", "#..#.", ".##.#", "#..#.", ".##.#"],
        _ => &["###.", "...#", ".##.", "....", ".#.."],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_glyph_is_rectangular() {
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -–—.,:;!'’\"/()+#&?";
        for c in alphabet.chars() {
            let rows = glyph(c);
            assert!(
                rows.iter().all(|row| row.len() == rows[0].len()),
                "glyph {c:?} has rows of different widths"
            );
        }
    }

    #[test]
    fn wrap_cuts_at_the_dash_first() {
        let measure = |text: &str| text.chars().count();
        assert_eq!(
            wrap("ALICE MARTIN — TAKE SLOT 3", 30, &measure),
            Some(vec!["ALICE MARTIN — TAKE SLOT 3".to_string()])
        );
        assert_eq!(
            wrap("ALICE MARTIN — TAKE SLOT 3", 20, &measure),
            Some(vec!["ALICE MARTIN".to_string(), "TAKE SLOT 3".to_string()])
        );
        assert_eq!(
            wrap("Badge not recognised — see the charge nurse", 12, &measure),
            Some(vec![
                "Badge not".to_string(),
                "recognised".to_string(),
                "see the".to_string(),
                "charge nurse".to_string()
            ])
        );
        assert_eq!(wrap("UNBREAKABLEWORD", 5, &measure), None);
    }

    #[test]
    fn fit_prefers_the_largest_scale_that_fits() {
        let wide = fit("SLOT 2 RETURNED", 200, 20, true).map(|text| text.scale);
        assert_eq!(wide, Some(Scale::Wide));
        // Two lines of wide letters would fit the width, but not five rows.
        let full = fit("SLOT 2 RETURNED", 100, 5, true).map(|text| text.scale);
        assert_eq!(full, Some(Scale::Full));
        let half = fit("ALICE MARTIN — TAKE SLOT 3", 78, 6, true).map(|text| text.scale);
        assert_eq!(half, Some(Scale::Half));
        assert_eq!(fit("ALICE MARTIN — TAKE SLOT 3", 78, 6, false), None);
    }
}
