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

This module reads and checks the bundled files (registry of sources and files, paths, manifest, checksums,
loaders). Deriving them from the source packages, the leakage screen and the command line
(``dnalm-book data verify|rebuild``, i.e. ``python -m dnalm_utils.data_rebuild verify|rebuild [--out DIR]
[--sources-dir DIR]``) live in :mod:`dnalm_utils.data_rebuild`.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import DnalmInputError, ParameterError
from .genome import parse_fasta, read_fasta
from .io import sha256_bytes

__all__ = [
    "DATA_DIR",
    "FILES",
    "SOURCES",
    "DataIntegrityError",
    "get_data_dir",
    "bundled_file",
    "load_manifest",
    "verify",
    "verify_or_raise",
    "load_features",
    "load_tf_peaks",
    "load_sequences",
    "read_fasta_text",
    "evaluation_genome",
    "evaluation_windows",
    "evaluation_window_records",
]

#: Default location of the bundled data: ``<repo root>/data``. Override with ``DNALM_DATA_DIR``.
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
ENV_VAR = "DNALM_DATA_DIR"
MANIFEST_NAME = "MANIFEST.json"
REBUILD_HINT = "run `dnalm-book data rebuild` (or `python -m dnalm_utils.data_rebuild rebuild`)"

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
#: ``pretrain_32mer_fraction`` / ``heldout_32mer_fraction`` of the peak table: containment.shared_fraction of the
#: peak in that corpus (k = containment.SCREEN_K = 32); a peak at containment.CONTAINED_FRACTION or more is
#: contained in it (listed in the manifest's ``split.tf_peaks.flagged``).


class DataIntegrityError(DnalmInputError):
    """A bundled data file is missing or does not match ``data/MANIFEST.json``."""


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


def evaluation_window_records(n: int, length: int, *, seed: int, fasta: str | os.PathLike = "", region: str = "",
                              data_dir: str | os.PathLike | None = None) -> tuple[list, str]:
    """(``n`` :class:`genome.Window` records of ``length`` nt, ACGT-only, drawn uniformly from
    :func:`evaluation_genome`, a short description of where they come from, e.g. ``"chr22:20000001-21000000"``).

    Each window keeps its record name, ``[start, end)`` (0-based half-open on that record; with ``region`` the
    record is the cut ``name:start-end``) and strand, so per-position annotations of the records (e.g.
    :mod:`sequence_classes`) can be looked up. The same draws as :func:`evaluation_windows`."""
    from .genome import sample_windows

    g = evaluation_genome(fasta, region, data_dir)
    where = ", ".join(g.names[:3]) + (f" and {len(g.names) - 3} more records" if len(g.names) > 3 else "")
    return sample_windows(g, n, length, seed=seed), where


def evaluation_windows(n: int, length: int, *, seed: int, fasta: str | os.PathLike = "", region: str = "",
                       data_dir: str | os.PathLike | None = None) -> tuple[list[str], str]:
    """(``n`` ACGT-only window sequences of ``length`` nt drawn uniformly from :func:`evaluation_genome`, a short
    description of where they come from, e.g. ``"chr22:20000001-21000000"``)."""
    records, where = evaluation_window_records(n, length, seed=seed, fasta=fasta, region=region, data_dir=data_dir)
    return [w.sequence for w in records], where


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
