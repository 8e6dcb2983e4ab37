"""Mail: composing messages from templates, the outbox delivery loop and its senders."""
