//! Where replay stops: before the first transaction that committed at or after a time, before
//! a WAL location, before the commit of a transaction ID — `recovery_target_inclusive = off`
//! in every case, so the bad script's own transaction is never replayed — or, without any of
//! them, at the first consistent point after the backup (`recovery_target = 'immediate'`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A recovery target as the user gave it, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum RecoveryTarget {
    /// The first consistent point after the backup.
    Immediate,
    /// A timestamptz; without a zone it is UTC (the instance's TimeZone).
    Time(String),
    Lsn(Lsn),
    /// A transaction ID (`txid_current()` form with epoch accepted).
    Xid(u64),
}

impl RecoveryTarget {
    /// `--until TIME`: a date first (YYYY-MM-DD), the rest is PostgreSQL's to parse.
    pub fn time(text: &str) -> Result<Self> {
        let text = text.trim();
        let bytes = text.as_bytes();
        let date_like = bytes.len() >= 10
            && bytes[..4].iter().all(u8::is_ascii_digit)
            && bytes[4] == b'-'
            && bytes[5..7].iter().all(u8::is_ascii_digit)
            && bytes[7] == b'-'
            && bytes[8..10].iter().all(u8::is_ascii_digit);
        if !date_like || text.contains(['\'', '\\', '\n']) {
            return Err(Error::Invalid(format!(
                "--until `{text}` is not a time: give a timestamp such as `2026-03-01 14:05:00+00` (without a zone it is UTC)"
            )));
        }
        Ok(Self::Time(text.to_owned()))
    }

    /// `--until-lsn 0/3000060`.
    pub fn lsn(text: &str) -> Result<Self> {
        Lsn::parse(text).map(Self::Lsn).ok_or_else(|| {
            Error::Invalid(format!(
                "--until-lsn `{text}` is not a WAL location: give it as PostgreSQL shows one, e.g. 0/3000060"
            ))
        })
    }

    /// `--until-xid 1234`.
    pub fn xid(text: &str) -> Result<Self> {
        match text.trim().parse::<u64>() {
            Ok(xid) if xid >= 3 => Ok(Self::Xid(xid)),
            _ => Err(Error::Invalid(format!(
                "--until-xid `{text}` is not a transaction ID (a number, as txid_current() gives it)"
            ))),
        }
    }

    /// The recovery settings for this target.
    pub(crate) fn settings(&self) -> Vec<(&'static str, String)> {
        let mut settings = match self {
            Self::Immediate => vec![("recovery_target", "immediate".to_owned())],
            Self::Time(time) => vec![("recovery_target_time", time.clone())],
            Self::Lsn(lsn) => vec![("recovery_target_lsn", lsn.to_string())],
            Self::Xid(xid) => vec![("recovery_target_xid", xid.to_string())],
        };
        if *self != Self::Immediate {
            settings.push(("recovery_target_inclusive", "off".to_owned()));
        }
        settings
    }
}

impl fmt::Display for RecoveryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Immediate => f.write_str("the first consistent point after the backup"),
            Self::Time(time) => write!(
                f,
                "{time} (before the first transaction that committed at or after it)"
            ),
            Self::Lsn(lsn) => write!(f, "WAL location {lsn} (before the record there)"),
            Self::Xid(xid) => write!(f, "transaction {xid} (before its commit)"),
        }
    }
}

/// A WAL location (log sequence number), `X/Y` in hex as PostgreSQL writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Lsn(pub u64);

impl Lsn {
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let (high, low) = text.trim().split_once('/')?;
        if high.is_empty() || low.is_empty() || high.len() > 8 || low.len() > 8 {
            return None;
        }
        let high = u64::from_str_radix(high, 16).ok()?;
        let low = u64::from_str_radix(low, 16).ok()?;
        Some(Self(high << 32 | low))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl From<Lsn> for String {
    fn from(lsn: Lsn) -> Self {
        lsn.to_string()
    }
}

impl TryFrom<String> for Lsn {
    type Error = String;

    fn try_from(text: String) -> std::result::Result<Self, Self::Error> {
        Self::parse(&text).ok_or_else(|| format!("`{text}` is not a WAL location"))
    }
}

#[cfg(test)]
mod tests {
    use super::{Lsn, RecoveryTarget};

    #[test]
    fn lsns_parse_and_print_as_postgres_does() {
        let lsn = Lsn::parse("0/90001E8").expect("an LSN");
        assert_eq!(lsn.0, 0x0900_01e8);
        assert_eq!(lsn.to_string(), "0/90001E8");
        assert_eq!(Lsn::parse("1A/0").expect("an LSN").0, 0x1a << 32);
        assert!(Lsn::parse("0/").is_none());
        assert!(Lsn::parse("90001E8").is_none());
        assert!(Lsn::parse("0/XYZ").is_none());
        assert!(Lsn::parse("0/123456789").is_none());
    }

    #[test]
    fn targets_are_checked_and_exclusive() {
        assert!(RecoveryTarget::time("2026-03-01 14:05:00+00").is_ok());
        assert!(RecoveryTarget::time("yesterday").is_err());
        assert!(RecoveryTarget::time("2026-03-01'; DROP").is_err());
        assert!(RecoveryTarget::xid("abc").is_err());
        assert_eq!(
            RecoveryTarget::xid("726").expect("an xid").settings(),
            [
                ("recovery_target_xid", "726".to_owned()),
                ("recovery_target_inclusive", "off".to_owned())
            ]
        );
        assert_eq!(
            RecoveryTarget::Immediate.settings(),
            [("recovery_target", "immediate".to_owned())]
        );
    }
}
