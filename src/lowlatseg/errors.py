"""The exceptions the CLI turns into a one-sentence message and a non-zero exit."""


class UserError(Exception):
    """Bad input from the user: a missing file, a corrupt video, a wrong checkpoint, a bad flag.

    The message is one sentence that says what is wrong and what to do about it.
    """


class WorkerError(RuntimeError):
    """The background keyframe worker of the low-latency runtime failed; the message names the frame."""
