//! The schema-level restore plan: tenant ownership, shared tables, restore order, drift
