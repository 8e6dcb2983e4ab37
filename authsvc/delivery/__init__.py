"""Delivery from the outbox: one claim loop (loop.py) and a channel adapter per kind of
message (channel.py): SMTP for mail (authsvc/mail/senders.py), HTTP for webhooks
(authsvc/webhooks/sender.py). DESIGN §7: one outbox, one claim loop, an adapter per kind.
"""
