"""The named time limits of the unit tests, in seconds.

Every limit is an upper bound that only a broken (hung) test reaches: a
passing test never waits for one to expire, so the values are generous
(the suite runs on two shared cores, on the free-threaded build too, and
under load a "prompt" wake-up can take a second).  A test that needs a
tighter bound for what it checks (a timer's lower bound, a script's own
deadline) keeps that bound next to its check.
"""

from __future__ import annotations

#: Something that should happen at once (a wake-up, a cancellation, a
#: completion already due) must have happened within this.
PROMPT = 5.0
#: A handshake or poll for a condition another thread or the OS brings
#: about (a peer connecting, readiness, a helper thread letting go).
PATIENCE = 10.0
#: A thread (run() threads, a blocking peer) must return within this.
JOIN = 30.0
#: A wait or timer that only a wake-up, a cancellation or a close may cut
#: short: it never expires by itself while a test runs.
LONG = 30.0
