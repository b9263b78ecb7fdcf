//! Prove restored tenants equal the snapshot, by key and typed value
