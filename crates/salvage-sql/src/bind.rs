//! How a value becomes part of a statement without being spliced into its text.

/// Something that turns a value into the SQL expression that stands for it: a parameter
/// marker for ordinary statements ([`Params`]), a `current_setting` call for COPY (the
/// connection crate's `CopyQuery`).
pub trait Binder {
    /// Registers `value` and returns SQL text yielding it as `text`.
    fn bind(&mut self, value: String) -> String;
}

/// Parameters of an ordinary statement: `$1`, `$2`... bound in order, as text.
#[derive(Debug, Default)]
pub struct Params {
    pub values: Vec<String>,
}

impl Binder for Params {
    fn bind(&mut self, value: String) -> String {
        self.values.push(value);
        format!("${}::text", self.values.len())
    }
}
