"""The exceptions the CLI turns into a one-sentence message and a non-zero exit."""

from __future__ import annotations

from collections.abc import Callable


class UserError(Exception):
    """Bad input from the user: a missing file, a corrupt video, a wrong checkpoint, a bad flag.

    The message is one sentence that says what is wrong and what to do about it.
    """


class WorkerError(RuntimeError):
    """The background keyframe worker of the low-latency runtime failed; the message names the frame."""


class ParameterError(UserError):
    """A bad value of named parameters. The library's message names the parameters
    (``interval 0 is not valid ...``); the CLI names its flags instead (``--interval 0 ...``),
    through :meth:`naming`.

    ``template``: the sentence, each parameter written ``{name}``; ``parameters``: their names
    (a parameter ``max_gap`` is the flag ``--max-gap``).
    """

    def __init__(self, template: str, *parameters: str) -> None:
        self.template = template
        self.parameters = parameters
        super().__init__(self.naming(lambda p: p))

    def naming(self, name: Callable[[str], str]) -> str:
        """The sentence with every parameter written ``name(parameter)``."""
        out = self.template
        for p in self.parameters:
            out = out.replace("{" + p + "}", name(p))
        return out
