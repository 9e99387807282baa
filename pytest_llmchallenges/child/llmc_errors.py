"""How a call into a submission can fail, as the child reports it (the parent turns these into verdicts)."""

from __future__ import annotations


class InterfaceError(Exception):
    """Nothing in the submission fits a role, or it returned something no convention can read.

    ``not_driven`` is set when no candidate could be driven at all (the probe rule's last outcome), as opposed
    to an answer that was driven but returned something unreadable."""

    not_driven: bool = False


class SubmissionError(Exception):
    """The submission's code raised; ``detail`` is its traceback, trimmed to its own frames.

    ``own_frames``: the exception passed through a frame of the submission's files (a TypeError from the
    call itself, raised before any of its code ran, did not). ``guess``: why the call was a guess at a
    calling convention rather than one its signature or the prompt declares ("" when it was not);
    ``by_position``: parameters the binding filled by position. The probe rule (llmc_probe) reads all three.
    """

    def __init__(
        self,
        message: str,
        detail: str = "",
        category: str = "error",
        own_frames: bool = True,
        by_position: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.detail = detail
        self.category = category
        self.own_frames = own_frames
        self.by_position = by_position
        self.guess = ""


class SubmissionExit(BaseException):
    """The submission tried to end the process (sys.exit): a crash verdict that no driver's probing loop may
    swallow, hence a BaseException like SystemExit itself."""


def exc_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (300 characters at most): how the child names any exception."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__
