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
        let width = |text: &str| text.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|(name, _)| width(name)).collect();
        for row in &self.rows {
            for (column, cell) in row.iter().enumerate() {
                if let Some(current) = widths.get_mut(column) {
                    *current = (*current).max(width(cell));
                }
            }
        }
        let mut out = String::new();
        let headers: Vec<String> = self.headers.iter().map(|(name, _)| name.clone()).collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
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

#[cfg(test)]
mod tests {
    use super::{Align, TextTable};

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
