//! Plain aligned tables for the CLI's text output. Cells come from the
//! coordinator, and so from whoever stored them: control characters are shown
//! escaped (a newline cannot forge a row, an escape sequence cannot drive the
//! terminal) and long cells are cut, so no answer breaks the table.

use std::io::Write;

/// Longest cell shown, in characters; longer ones end in `…`.
pub const MAX_CELL: usize = 120;

/// A table's width unless `-o wide`: a terminal split beside an editor.
pub const WIDTH: usize = 120;

/// The narrowest a column is cut to when the table must fit `WIDTH`.
const MIN_COLUMN: usize = 8;

pub struct Table<const N: usize> {
    rows: Vec<[String; N]>,
    /// Columns whose cells are states, coloured by `colour_of` on a terminal.
    states: [bool; N],
}

/// The ANSI colour of a state a person should notice, if any.
pub fn colour_of(state: &str) -> Option<&'static str> {
    match state {
        "succeeded" | "connected" | "running" | "yes" => Some("32"),
        "rolled_back" | "rolling_back" | "lost" | "failed" | "terminated" => Some("31"),
        "cancelled" | "queued" | "never" | "exited" => Some("33"),
        _ => None,
    }
}

/// How a table is laid out: cut to `WIDTH` or as wide as it needs, coloured or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub wide: bool,
    pub colour: bool,
}

/// `text` as one line a terminal shows as written: control characters escaped
/// (`\n`, `\u{1b}`), cut at `max` characters.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for c in text.chars() {
        let piece: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        let width = piece.chars().count();
        if shown + width > max {
            out.push('…');
            return out;
        }
        shown += width;
        out.push_str(&piece);
    }
    out
}

impl<const N: usize> Table<N> {
    pub fn new(header: [&str; N]) -> Self {
        Table {
            rows: vec![header.map(str::to_string)],
            states: [false; N],
        }
    }

    /// Colours the cells of `column` by their value (on a terminal only).
    pub fn states(mut self, column: usize) -> Self {
        self.states[column] = true;
        self
    }

    pub fn row(&mut self, row: [String; N]) {
        self.rows.push(row.map(|cell| printable(&cell, MAX_CELL)));
    }

    pub fn render(&self, layout: Layout) -> String {
        let mut widths = [0usize; N];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        if !layout.wide {
            fit(&mut widths, WIDTH);
        }
        let mut out = String::new();
        for (r, row) in self.rows.iter().enumerate() {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let shown = cut(cell, widths[i]);
                let pad = widths[i] - shown.chars().count();
                match colour_of(&shown).filter(|_| layout.colour && r > 0 && self.states[i]) {
                    Some(code) => line.push_str(&format!("\u{1b}[{code}m{shown}\u{1b}[0m")),
                    None => line.push_str(&shown),
                }
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints the table; a reader that went away (`| head`) is not an error.
    pub fn print(&self, layout: Layout) {
        let _ = std::io::stdout()
            .lock()
            .write_all(self.render(layout).as_bytes());
    }
}

/// Narrows the widest columns until the row (with two spaces between
/// columns) fits `width`, none below `MIN_COLUMN` (or its own width).
fn fit(widths: &mut [usize], width: usize) {
    let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1);
    while total(widths) > width {
        let Some(widest) = (0..widths.len()).max_by_key(|&i| widths[i]) else {
            return;
        };
        if widths[widest] <= MIN_COLUMN {
            return;
        }
        widths[widest] -= 1;
    }
}

/// `cell` cut to `width` characters, ending in `…` when cut.
fn cut(cell: &str, width: usize) -> String {
    if cell.chars().count() <= width {
        return cell.to_string();
    }
    let mut shown: String = cell.chars().take(width.saturating_sub(1)).collect();
    shown.push('…');
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let mut table = Table::new(["ID", "PHASE"]);
        table.row(["d-10".into(), "succeeded".into()]);
        assert_eq!(table.render(PLAIN), "ID    PHASE\nd-10  succeeded\n");
    }

    const PLAIN: Layout = Layout {
        wide: false,
        colour: false,
    };

    #[test]
    fn a_table_fits_120_columns_unless_wide() {
        let mut table = Table::new(["ID", "WHY", "WHO"]);
        table.row(["d-1".into(), "x".repeat(150), "alice (admin)".into()]);
        let narrow = table.render(PLAIN);
        assert!(
            narrow.lines().all(|l| l.chars().count() <= WIDTH),
            "{narrow}"
        );
        assert!(
            narrow.contains("alice (admin)"),
            "short columns are kept: {narrow}"
        );
        assert!(narrow.contains('…'), "{narrow}");
        let wide = table.render(Layout {
            wide: true,
            colour: false,
        });
        assert!(wide.contains(&"x".repeat(120)), "{wide}");
    }

    #[test]
    fn states_are_coloured_only_when_asked_and_only_in_their_column() {
        let mut table = Table::new(["ID", "PHASE"]).states(1);
        table.row(["rolled_back".into(), "rolled_back".into()]);
        let coloured = table.render(Layout {
            wide: false,
            colour: true,
        });
        assert_eq!(coloured.matches("\u{1b}[31m").count(), 1, "{coloured:?}");
        assert!(!table.render(PLAIN).contains('\u{1b}'));
    }

    #[test]
    fn a_newline_cannot_forge_a_row_nor_an_escape_drive_the_terminal() {
        let mut table = Table::new(["WHO", "TARGET"]);
        table.row([
            "vera (viewer)".into(),
            "x\n7  12:00:00Z  admin (admin)  deploy  hello@v9 -> prod1  ok\u{1b}[2J".into(),
        ]);
        let text = table.render(PLAIN);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("x\\n7"), "{text}");
        assert!(text.contains("\\u{1b}[2J"), "{text}");
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn a_huge_cell_is_cut_and_does_not_panic() {
        let mut table = Table::new(["IMAGE"]);
        table.row(["a".repeat(4 * 1024 * 1024)]);
        let text = table.render(Layout {
            wide: true,
            colour: false,
        });
        let cell = text.lines().nth(1).unwrap();
        assert_eq!(cell.chars().count(), MAX_CELL + 1);
        assert!(cell.ends_with('…'));
    }
}
