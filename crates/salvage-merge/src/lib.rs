//! Merge tenants' rows into the live database, one transaction per tenant
