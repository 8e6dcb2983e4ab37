"""Mail: composing messages from templates, the outbox delivery loop and its senders.

For the account flows (issue 13), everything is on ``Services``:

* ``services.users_db.transaction()``: ``async with … as tx`` opens one transaction on
  the users database (MariaDB or SQLite); ``tx.execute / fetchone / fetchall`` run
  statements in it (the driver's placeholders: ``%s`` MySQL, ``?`` SQLite), it commits
  when the block ends and rolls back when it raises (stores/outbox.py UnitOfWork).
* ``services.mailer.enqueue(tx, kind, to, link=…, expires_in=…)`` records a mail in
  that transaction (mailer.py): the token row and its mail commit together or not at
  all, and the commit wakes this process's delivery loop. ``services.mailer.send(…)``
  is the same in a transaction of its own. ``services.mailer.enabled`` is False in
  production without SMTP_URL (a mail enqueued then waits in the outbox until a
  process with SMTP_URL sends it).
* Kinds and their variables: templates.py KINDS and DEFAULTS; ``human_duration`` turns
  a lifetime into ``expires_in``.

Delivery (authsvc/delivery/loop.py) runs in every serving process, claims with SKIP
LOCKED, sends with senders.py (MailChannel), retries by core/outbox.py's policy;
`authsvc outbox …` shows it.
"""
