//! Plain-text tables for terminal summaries: columns padded to their widest cell.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

#[derive(Debug)]
pub struct TextTable {
    headers: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl TextTable {
    pub fn new(headers: &[(&str, Align)]) -> Self {
        Self {
            headers: headers
                .iter()
                .map(|(name, align)| ((*name).to_owned(), *align))
                .collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders with `indent` spaces before every line.
    pub fn render(&self, indent: usize) -> String {
        self.render_within(indent, usize::MAX, None)
    }

    /// Renders within `max_width` columns: when the table is wider, the cells of
    /// `wrap_column` are wrapped at spaces onto lines of their own under their row (a word
    /// longer than the room left is cut into pieces).
    pub fn render_within(
        &self,
        indent: usize,
        max_width: usize,
        wrap_column: Option<usize>,
    ) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|(name, _)| width(name)).collect();
        for row in &self.rows {
            for (column, cell) in row.iter().enumerate() {
                if let Some(current) = widths.get_mut(column) {
                    *current = (*current).max(width(cell));
                }
            }
        }
        let total = indent + widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        let mut rows: Vec<Vec<String>> = Vec::new();
        match wrap_column {
            Some(wrap) if total > max_width && wrap < widths.len() => {
                let others = total - widths[wrap];
                let room = max_width
                    .saturating_sub(others)
                    .max(width(&self.headers[wrap].0))
                    .max(12);
                widths[wrap] = room;
                for row in &self.rows {
                    let pieces = row
                        .get(wrap)
                        .map_or_else(Vec::new, |cell| wrap_text(cell, room));
                    for (number, piece) in pieces.iter().enumerate() {
                        let mut line: Vec<String> = if number == 0 {
                            row.clone()
                        } else {
                            vec![String::new(); row.len()]
                        };
                        line[wrap].clone_from(piece);
                        rows.push(line);
                    }
                    if pieces.is_empty() {
                        rows.push(row.clone());
                    }
                }
            }
            _ => rows.clone_from(&self.rows),
        }
        let mut out = String::new();
        let headers: Vec<String> = self.headers.iter().map(|(name, _)| name.clone()).collect();
        for row in std::iter::once(&headers).chain(&rows) {
            let mut line = " ".repeat(indent);
            for (column, cell) in row.iter().enumerate() {
                let align = self
                    .headers
                    .get(column)
                    .map_or(Align::Left, |(_, align)| *align);
                let pad = widths
                    .get(column)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(width(cell));
                if column > 0 {
                    line.push_str("  ");
                }
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        line.push_str(&" ".repeat(pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// `text` in lines of at most `room` characters, broken at spaces (continuation lines
/// indented by two).
pub(crate) fn wrap_text(text: &str, room: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let lead = if lines.is_empty() { 0 } else { 2 };
        let needed = width(&line) + usize::from(!line.is_empty()) + width(word);
        if !line.is_empty() && lead + needed > room {
            lines.push(std::mem::take(&mut line));
        }
        let mut word = word.to_owned();
        loop {
            let lead = if lines.is_empty() { 0 } else { 2 };
            if !line.is_empty() || lead + width(&word) <= room {
                break;
            }
            let cut: String = word.chars().take(room - lead).collect();
            word = word.chars().skip(room - lead).collect();
            lines.push(cut);
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(number, line)| {
            if number == 0 {
                line
            } else {
                format!("  {line}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Align, TextTable, wrap_text};

    #[test]
    fn wraps_one_column_under_its_row() {
        let mut table = TextTable::new(&[
            ("NAME", Align::Left),
            ("PATH", Align::Left),
            ("ROWS", Align::Right),
        ]);
        table.row(vec![
            "a".into(),
            "one two three four".into(),
            "1,000".into(),
        ]);
        let text = table.render_within(0, 20, Some(1));
        assert_eq!(
            text,
            "NAME  PATH           ROWS\na     one two       1,000\n        three four\n"
        );
        assert!(
            text.lines().all(|line| line.chars().count() <= 25),
            "{text}"
        );
        assert_eq!(wrap_text("abcdefghij", 4), ["abcd", "  ef", "  gh", "  ij"]);
    }

    #[test]
    fn pads_columns() {
        let mut table = TextTable::new(&[("NAME", Align::Left), ("ROWS", Align::Right)]);
        table.row(vec!["comments".into(), "1200".into()]);
        table.row(vec!["é".into(), "3".into()]);
        assert_eq!(
            table.render(2),
            "  NAME      ROWS\n  comments  1200\n  é            3\n"
        );
    }
}
