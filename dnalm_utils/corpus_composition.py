"""What the pre-training corpus is made of, computed: its records, its one dominant locus, its GC content
against the held-out slice, how often training reads it, and how many test windows fall in that locus.

The bundled corpus (``corpus.corpus_records()``: EMBOSS human INSDC entries) is mostly one locus. Which
records belong to it is decided by a rule written down here, not by a list of accessions:

* a record is in the **HLA class I region (chr6p21.3)** when its description names the MHC / HLA region
  (:data:`LOCUS_DESCRIPTION`: "HLA", "MHC", "major histocompatibility" or "6p21.3"; in the bundled corpus
  BA000025.2, "Homo sapiens genomic DNA, chromosome 6p21.3, HLA Class I region"), or
* when it is contained in such a record by the package's one containment screen
  (``containment.shared_fraction`` >= ``containment.CONTAINED_FRACTION``: half or more of its 32-mers, either
  strand). In the bundled corpus that adds AF129756.1 (MSH55 ... TNF, LTA: MHC class III genes), 96.5 % of
  whose 32-mers lie in BA000025.2: the same DNA, read by training a second time.

Every other record is ``"other"``. A user's corpus without such a record has no dominant named locus; its
summary then names the largest record instead.

Functions: :func:`record_table` (one row per record), :func:`composition_summary` (the numbers the pages
quote), :func:`composition_text` (one Markdown sentence for a ``{glue:md}``), :func:`windows_per_locus` and
:func:`windows_in_locus` (test windows, e.g. chapter 6's exon / intron windows, per locus),
:func:`sequences_in_locus` (bare sequences, by the containment screen).
"""

from __future__ import annotations

import functools
import os
import re
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .codec import encode
from .errors import ParameterError

__all__ = [
    "HLA_LOCUS",
    "OTHER",
    "LOCUS_DESCRIPTION",
    "record_table",
    "composition_summary",
    "composition_text",
    "windows_per_locus",
    "windows_in_locus",
    "sequences_in_locus",
]

#: Label of the dominant locus of the bundled corpus.
HLA_LOCUS = "HLA class I region (chr6p21.3)"
#: Label of every record outside a named locus.
OTHER = "other"
#: A record whose description matches this names the MHC / HLA region (case-insensitive).
LOCUS_DESCRIPTION = re.compile(r"\bHLA\b|\bMHC\b|major histocompatibility|\b6p21\.3", re.IGNORECASE)

_COLUMNS = ["record", "description", "length_nt", "acgt_nt", "gc_fraction", "corpus_share", "locus",
            "locus_evidence"]


def _base_counts(seq: str) -> tuple[int, int]:
    """(A/C/G/T count, G/C count) of ``seq``, via the package codec (A=0, C=1, G=2, T=3)."""
    counts = np.bincount(encode(seq), minlength=4)
    return int(counts[:4].sum()), int(counts[1] + counts[2])


@functools.lru_cache(maxsize=8)
def _record_table(path: str, sha256: str) -> pd.DataFrame:
    """Cached by (path, file checksum): an edited file gets a new table."""
    from . import containment
    from .corpus import corpus_records

    records = corpus_records(path or None)
    named = [r for r in records if LOCUS_DESCRIPTION.search(f"{r.name} {r.description}")]
    rest = [r for r in records if r not in named]
    evidence = {r.name: "description names the MHC/HLA region" for r in named}
    if named and rest:
        shared = containment.shared_fraction([r.sequence for r in rest],
                                             containment.kmer_index([r.sequence for r in named]))
        for r, f in zip(rest, shared):
            if f >= containment.CONTAINED_FRACTION:
                evidence[r.name] = (f"{100 * f:.1f} % of its {containment.SCREEN_K}-mers lie in "
                                    f"{', '.join(n.name for n in named)}")
    total = sum(len(r.sequence) for r in records)
    rows = []
    for r in records:
        acgt, gc = _base_counts(r.sequence)
        rows.append({"record": r.name, "description": r.description, "length_nt": len(r.sequence),
                     "acgt_nt": acgt, "gc_fraction": gc / acgt if acgt else float("nan"),
                     "corpus_share": len(r.sequence) / total,
                     "locus": HLA_LOCUS if r.name in evidence else OTHER,
                     "locus_evidence": evidence.get(r.name, "")})
    return pd.DataFrame(rows, columns=_COLUMNS)


def record_table(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per record of the pre-training corpus (default: the bundled one), in file order.

    Columns: ``record`` (name), ``description``, ``length_nt`` (nt, all letters), ``acgt_nt`` (A/C/G/T only),
    ``gc_fraction`` (G+C among A/C/G/T), ``corpus_share`` (length_nt / corpus length_nt; the shares sum to 1),
    ``locus`` (:data:`HLA_LOCUS` or :data:`OTHER`, by the module's rule) and ``locus_evidence`` (why a record
    is in the locus; empty for "other").
    """
    from .corpus import corpus_fingerprint

    return _record_table(str(path or ""), corpus_fingerprint(path)).copy()


def _fasta_gc(path) -> tuple[int, float, list[str]]:
    """(nt, GC fraction of A/C/G/T, record names) of a FASTA file."""
    from .genome import read_fasta

    records = read_fasta(path)
    acgt = gc = 0
    for r in records:
        a, g = _base_counts(r.sequence)
        acgt, gc = acgt + a, gc + g
    return sum(len(r.sequence) for r in records), (gc / acgt if acgt else float("nan")), [r.name for r in records]


def composition_summary(path: str | os.PathLike | None = None, heldout: str | os.PathLike | None = None,
                        nucleotides_seen: int | None = None) -> dict:
    """The numbers the pages quote about the corpus ``path`` (default: bundled) and the held-out FASTA
    ``heldout`` (default: the bundled chr22 slice, ``data.bundled_file("heldout")``).

    Keys: ``total_nt``, ``n_records``; ``locus`` (the largest named locus, or None when no record belongs to
    one), ``locus_nt``, ``locus_share`` (locus_nt / total_nt), ``locus_records`` (names); ``largest_record``,
    ``largest_record_nt``, ``largest_record_share``; ``corpus_gc`` and ``heldout_gc`` (G+C among A/C/G/T,
    nt-weighted over all records), ``heldout_nt``, ``heldout_records`` (names); ``nucleotides_seen`` and
    ``passes`` = nucleotides_seen / total_nt (how many times training reads the corpus over), both None
    unless ``nucleotides_seen`` is given (e.g. ``PretrainConfig.nucleotides_seen``).
    """
    from . import data

    table = record_table(path)
    total = int(table.length_nt.sum())
    acgt = int(table.acgt_nt.sum())
    gc = float((table.gc_fraction.fillna(0) * table.acgt_nt).sum() / acgt) if acgt else float("nan")
    named = table[table.locus != OTHER]
    by_locus = named.groupby("locus").length_nt.sum().sort_values(ascending=False)
    locus = str(by_locus.index[0]) if len(by_locus) else None
    locus_nt = int(by_locus.iloc[0]) if len(by_locus) else 0
    largest = table.loc[table.length_nt.idxmax()]
    heldout_path = heldout if heldout is not None else data.bundled_file("heldout")
    heldout_nt, heldout_gc, heldout_records = _fasta_gc(heldout_path)
    if nucleotides_seen is not None:
        if isinstance(nucleotides_seen, bool) or not isinstance(nucleotides_seen, (int, np.integer)) \
                or nucleotides_seen < 0:
            raise ParameterError(f"nucleotides_seen={nucleotides_seen!r} must be a non-negative integer (nt read "
                                 "by pre-training, e.g. PretrainConfig.nucleotides_seen = steps x batch x window_nt).")
        nucleotides_seen = int(nucleotides_seen)
    return {
        "total_nt": total,
        "n_records": int(len(table)),
        "locus": locus,
        "locus_nt": locus_nt,
        "locus_share": locus_nt / total,
        "locus_records": named[named.locus == locus].record.tolist() if locus else [],
        "largest_record": str(largest.record),
        "largest_record_nt": int(largest.length_nt),
        "largest_record_share": float(largest.length_nt) / total,
        "corpus_gc": gc,
        "heldout_gc": heldout_gc,
        "heldout_nt": heldout_nt,
        "heldout_records": heldout_records,
        "nucleotides_seen": nucleotides_seen,
        "passes": None if nucleotides_seen is None else nucleotides_seen / total,
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _mb(nt: int) -> str:
    return f"{nt / 1e6:.2f} Mb"


def composition_text(summary: dict) -> str:
    """One Markdown sentence (two, with the consequence) on the corpus, formatted from
    :func:`composition_summary`'s numbers, for a ``{glue:md}`` in the pages."""
    missing = [k for k in ("total_nt", "n_records", "locus", "locus_share", "corpus_gc", "heldout_gc",
                           "heldout_records", "largest_record", "largest_record_share") if k not in summary]
    if missing:
        raise ParameterError(f"composition_text needs a composition_summary() dict; missing keys: {missing}.")
    s = summary
    text = f"The pre-training corpus is {_mb(s['total_nt'])} of human DNA in {s['n_records']} records"
    if s["locus"]:
        records = [f"`{r}`" for r in s.get("locus_records") or []]
        text += f", and {_pct(s['locus_share'])} of it is one locus, the {s['locus']}"
        if records:
            text += ": record" + ("s " if len(records) > 1 else " ") + " and ".join(
                [", ".join(records[:-1]), records[-1]] if len(records) > 1 else records)
            if len(records) > 1 and s["largest_record"] in (s.get("locus_records") or []):
                text += f" ({_pct(s['largest_record_share'])} of the corpus in `{s['largest_record']}` alone)"
    else:
        text += f"; the largest record, `{s['largest_record']}`, is {_pct(s['largest_record_share'])} of it"
    if s.get("passes") is not None:
        text += f"; training reads the corpus about {s['passes']:.1f} times over"
    heldout = ", ".join(f"`{r}`" for r in s["heldout_records"]) or "the held-out sequence"
    diff = 100 * (s["heldout_gc"] - s["corpus_gc"])
    text += (f". Its GC content is {_pct(s['corpus_gc'])} against {_pct(s['heldout_gc'])} on the held-out "
             f"slice {heldout} ({abs(diff):.1f} points {'more' if diff > 0 else 'less'} GC there). ")
    subject = "this one locus-heavy corpus" if s["locus"] else "this corpus"
    text += (f"So the book's numbers describe models of {subject}, not of the human genome at large, and a "
             "model may score worse on held-out sequence partly because of the GC shift, not only because of "
             "what it failed to learn.")
    return text


def _record_names(windows) -> tuple[list[str], pd.DataFrame | None]:
    """Record names of ``windows`` (a DataFrame or task table with a ``name`` column, an object with a
    ``.table``, or an iterable of objects with ``.name`` / of record names), and the table if there is one."""
    table = getattr(windows, "table", windows)
    if isinstance(table, pd.DataFrame):
        if "name" not in table.columns:
            raise ParameterError(f"windows: the table has no 'name' column (columns: {list(table.columns)}); pass "
                                 "a table of windows with the corpus record each lies on, e.g. exon_intron_task().table.")
        return table["name"].astype(str).tolist(), table
    if isinstance(windows, str):
        raise ParameterError("windows: pass a list of windows or record names, not one string.")
    names = [w if isinstance(w, str) else getattr(w, "name", None) for w in windows]
    if any(not isinstance(n, str) for n in names):
        raise ParameterError("windows: each item must be a record name (str) or have a .name (genome.Window, "
                             "FastaRecord); for bare sequences use sequences_in_locus().")
    return names, None


def _loci_of(names: Sequence[str], path) -> list[str]:
    table = record_table(path)
    loci = dict(zip(table.record, table.locus))
    unknown = sorted({n for n in names if n not in loci})
    if unknown:
        raise ParameterError(
            f"windows lie on records that are not in the corpus: {unknown[:5]}{' ...' if len(unknown) > 5 else ''}. "
            "Pass the corpus the windows were cut from as path=, or use sequences_in_locus() for bare sequences."
        )
    return [loci[n] for n in names]


def windows_per_locus(windows, path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Windows per locus: one row per (split, label, locus) -- split and label only where ``windows`` is a table
    that has them, e.g. ``biotasks.exon_intron_task(...).table`` (or the task itself) -- with ``windows``
    (count) and ``share`` (of the windows of that split and label). The records are those of corpus ``path``
    (default: the bundled corpus, which the exon / intron task is cut from)."""
    names, table = _record_names(windows)
    frame = pd.DataFrame({"locus": _loci_of(names, path)})
    keys = []
    if table is not None:
        for col in ("split", "label"):
            if col in table.columns:
                frame[col] = table[col].to_numpy()
                keys.append(col)
    counts = frame.groupby(keys + ["locus"]).size().rename("windows").reset_index()
    totals = counts.groupby(keys).windows.transform("sum") if keys else counts.windows.sum()
    counts["share"] = counts.windows / totals
    return counts


def windows_in_locus(windows, path: str | os.PathLike | None = None, *, locus: str = HLA_LOCUS) -> int:
    """How many of ``windows`` (see :func:`windows_per_locus`: a table with a ``name`` column, a task, or
    windows / record names) lie on a record of ``locus`` (default: the HLA class I region) of corpus ``path``.
    E.g. ``windows_in_locus(task.table[task.table.split == "test"])`` for chapter 6's test windows."""
    names, _ = _record_names(windows)
    return sum(1 for x in _loci_of(names, path) if x == locus)


def sequences_in_locus(sequences: Iterable[str], path: str | os.PathLike | None = None, *,
                       locus: str = HLA_LOCUS) -> np.ndarray:
    """(n,) bool: whether each sequence is contained in the records of ``locus`` of corpus ``path``, by the
    package's containment screen (half or more of its 32-mers there, either strand). For sequences whose
    record is not known, e.g. windows drawn elsewhere; False for a sequence shorter than 32 nt."""
    from . import containment
    from .corpus import corpus_records

    if isinstance(sequences, str):
        raise ParameterError("sequences: pass a list of sequences; wrap one sequence in a list.")
    table = record_table(path)
    members = set(table.record[table.locus == locus])
    if not members:
        raise ParameterError(f"no record of the corpus belongs to locus {locus!r}; its loci: "
                             f"{sorted(set(table.locus))}.")
    reference = [r.sequence for r in corpus_records(path) if r.name in members]
    return containment.contained(list(sequences), containment.kmer_index(reference))
