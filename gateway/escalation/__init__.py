"""Escalation: every incident reaches a person who can help, tier after tier, until acknowledged."""
