"""Outbound channels: each sends one notification once and reports a `Delivery`; retries live elsewhere."""
