"""The one exception type that reaches a user as a single line.

Anything a person can cause (a bad file, a wrong option, a missing asset) raises `SeqlabError`
with a message that names the problem and what to do. The CLI and the server turn it into one
red line / an HTTP 400 and never show a traceback; everything else is a bug.
"""


class SeqlabError(Exception):
    """An expected, user-facing error. `str(err)` is the whole message, one line."""
