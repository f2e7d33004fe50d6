//! Plain aligned tables for the CLI's text output. Cells come from the
//! coordinator, and so from whoever stored them: control characters are shown
//! escaped (a newline cannot forge a row, an escape sequence cannot drive the
//! terminal) and long cells are cut, so no answer breaks the table.

use std::io::Write;

/// Longest cell shown, in characters; longer ones end in `…`.
pub const MAX_CELL: usize = 120;

pub struct Table<const N: usize> {
    rows: Vec<[String; N]>,
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
        }
    }

    pub fn row(&mut self, row: [String; N]) {
        self.rows.push(row.map(|cell| printable(&cell, MAX_CELL)));
    }

    pub fn render(&self) -> String {
        let mut widths = [0usize; N];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints the table; a reader that went away (`| head`) is not an error.
    pub fn print(&self) {
        let _ = std::io::stdout().lock().write_all(self.render().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let mut table = Table::new(["ID", "PHASE"]);
        table.row(["d-10".into(), "succeeded".into()]);
        assert_eq!(table.render(), "ID    PHASE\nd-10  succeeded\n");
    }

    #[test]
    fn a_newline_cannot_forge_a_row_nor_an_escape_drive_the_terminal() {
        let mut table = Table::new(["WHO", "TARGET"]);
        table.row([
            "vera (viewer)".into(),
            "x\n7  12:00:00Z  admin (admin)  deploy  hello@v9 -> prod1  ok\u{1b}[2J".into(),
        ]);
        let text = table.render();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("x\\n7"), "{text}");
        assert!(text.contains("\\u{1b}[2J"), "{text}");
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn a_huge_cell_is_cut_and_does_not_panic() {
        let mut table = Table::new(["IMAGE"]);
        table.row(["a".repeat(4 * 1024 * 1024)]);
        let text = table.render();
        let cell = text.lines().nth(1).unwrap();
        assert_eq!(cell.chars().count(), MAX_CELL + 1);
        assert!(cell.ends_with('…'));
    }
}
