"""Webhooks (issue 14): account events recorded in the outbox (events.py) and delivered
over HTTP, signed as Standard Webhooks says (signing.py, sender.py), by the same claim
loop as mail (authsvc/delivery/)."""
