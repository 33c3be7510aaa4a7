"""The pre-training corpus as data: its records, checksum, ACGT pieces, and the records safe to split.

Default corpus: the bundled EMBOSS human INSDC entries (``data.bundled_file("pretrain")``); every function
takes ``path`` to read another FASTA instead. Pre-training (``dnalm_utils.pretraining``) uses every record;
analyses that cut the corpus into training / validation / test blocks (next-k-mer, fine-tuning baselines)
use :func:`split_corpus_records`, which leaves out the records contained in others (the package's one
containment screen, :mod:`dnalm_utils.containment`: half or more of their 32-mers in the other records).
"""

from __future__ import annotations

import functools
import os
from typing import Iterable

from .io import sha256_file

__all__ = [
    "corpus_records",
    "corpus_fingerprint",
    "repeated_corpus_records",
    "split_corpus_records",
    "acgt_pieces",
    "corpus_pieces",
]


def _corpus_path(path: str | os.PathLike | None):
    from . import data

    return path or data.bundled_file("pretrain")


def corpus_records(path: str | os.PathLike | None = None):
    """FASTA records (``genome.FastaRecord``, sequences upper-cased) of the pre-training corpus (default: the
    bundled EMBOSS human entries)."""
    from . import genome

    return genome.read_fasta(_corpus_path(path))


def corpus_fingerprint(path: str | os.PathLike | None = None) -> str:
    """sha256 (hex) of the corpus FASTA file (the bundled one by default): part of every cache key that
    depends on the corpus."""
    return sha256_file(_corpus_path(path))


def repeated_corpus_records(path: str | os.PathLike | None = None) -> list[str]:
    """Names of the corpus records contained in the other records (``containment.contained_records`` with its
    one k and threshold), in the order they were dropped; left out by :func:`split_corpus_records`.

    In the bundled corpus: AY411291.1 and X65923.1 (FAU entries repeating X65923.1 and X65921.1), V00508.1
    (epsilon-globin, inside the beta-globin locus U01317.1) and AF129756.1 (MHC class III region, inside
    BA000025.2). Cached per file content.
    """
    return list(_contained_corpus_records(str(path or ""), corpus_fingerprint(path)))


@functools.lru_cache(maxsize=8)
def _contained_corpus_records(path: str, sha256: str) -> tuple[str, ...]:
    """Cached by (path, file checksum) so that an edited file is screened again."""
    from .containment import contained_records

    return tuple(contained_records({r.name: r.sequence for r in corpus_records(path or None)}))


def split_corpus_records(path: str | os.PathLike | None = None):
    """The corpus records that may be cut into training / validation / test blocks: :func:`corpus_records`
    minus :func:`repeated_corpus_records`, so that no stretch of DNA lands on both sides of a split.
    Pre-training keeps them all."""
    drop = set(repeated_corpus_records(path))
    return [r for r in corpus_records(path) if r.name not in drop]


def acgt_pieces(seqs: Iterable[str], min_length: int = 8) -> list[str]:
    """The maximal A/C/G/T-only runs of at least ``min_length`` nt of ``seqs`` (N and IUPAC codes split a
    sequence), in order: what a tokenizer is trained or counted on."""
    from .genome import acgt_segments

    return [s[a:b] for s in seqs for a, b in acgt_segments(s, min_length)]


def corpus_pieces(path: str | os.PathLike | None = None, *, min_length: int = 8) -> list[str]:
    """The pre-training corpus as ACGT-only pieces of at least ``min_length`` nt (:func:`acgt_pieces`), ready
    for any tokenizer, e.g. to count token frequencies."""
    return acgt_pieces((r.sequence for r in corpus_records(path)), min_length)
