"""Error types with messages that say what is wrong and how to fix it.

Every error raised for bad user input derives from :class:`DnalmInputError` (a ``ValueError``), so a
notebook or the CLI can catch one type and print the message without a traceback. Messages name the
file / line / parameter at fault and end with the fix.
"""

from __future__ import annotations


class DnalmInputError(ValueError):
    """Bad input from the user (file, parameter, model); the message names it and the fix."""


class FastaFormatError(DnalmInputError):
    """A FASTA file is empty, has no header, is binary, or is otherwise malformed."""


class SequenceAlphabetError(DnalmInputError):
    """A sequence holds characters the chosen operation cannot take (non-ACGT, non-IUPAC)."""


class ParameterError(DnalmInputError):
    """A parameter is out of range or of the wrong kind (k, window length, notebook parameter, ...)."""


class VocabularyMismatchError(DnalmInputError):
    """A model's vocabulary does not match the tokenizer it is used with."""


class ModelNotAvailableError(DnalmInputError):
    """A model could not be found locally or fetched (e.g. a hub id while offline)."""


def check_int_range(name: str, value, low: int, high: int | None = None, *, hint: str = "") -> int:
    """Return ``value`` as int if ``low <= value <= high``; else raise :class:`ParameterError`."""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        hasattr(value, "__index__")
    ):
        raise ParameterError(f"parameter {name}={value!r} must be an integer. {hint}".strip())
    value = int(value)
    if value < low or (high is not None and value > high):
        rng = f"{low}..{high}" if high is not None else f">= {low}"
        raise ParameterError(f"parameter {name}={value} is out of range: allowed {rng}. {hint}".strip())
    return value
