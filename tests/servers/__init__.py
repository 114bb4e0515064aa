"""Loopback servers that stand in for an SMTP relay and for SendGrid in tests."""
