"""The audit trail: one hash-chained event per API call, written before the response leaves."""
