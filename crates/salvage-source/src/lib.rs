//! Snapshot sources: read the chosen tenants' rows from a snapshot database
