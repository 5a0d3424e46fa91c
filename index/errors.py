"""The one exception type for mistakes a user can make (bad file, bad setting, bad query)."""


class PaperchatError(Exception):
    """A user-facing error: the message names the file, line or setting at fault.

    The CLI prints it as one line and exits with status 2; the UI shows it as a message.
    Anything else escaping is a bug in paperchat, not in the user's input.
    """
