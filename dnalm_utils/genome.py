"""FASTA I/O, ACGT-only segments and reproducible window sampling.

Conventions used throughout this module:

* Coordinates are 0-based, half-open ``[start, end)``, in nucleotides (nt); ``end - start`` is the length.
* Line and column numbers in error messages are 1-based, as an editor shows them.
* Sequences are returned upper-case; soft-masking (lower case) is kept only by
  ``read_fasta(..., uppercase=False)``.
* Every random choice comes from ``numpy.random.default_rng(seed)``, so the same seed gives the same result.

:class:`Genome` is one interface over an in-memory FASTA (small or plain-gzip files, or sequences built in
code) and an indexed one (``pyfaidx`` random access for plain and bgzip files, which never loads the file).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from . import codec
from .errors import (
    FastaFormatError,
    ParameterError,
    SequenceAlphabetError,
    check_int_range,
)

__all__ = [
    "IUPAC_CODES",
    "FastaNotFoundError",
    "FastaRecord",
    "Genome",
    "Window",
    "acgt_segments",
    "check_acgt",
    "gc_content",
    "iter_fasta",
    "read_fasta",
    "reverse_complement",
    "sample_windows",
    "tile_windows",
]

#: IUPAC nucleotide codes accepted in FASTA sequence lines (either case). '-' (gap) and '*' are rejected.
IUPAC_CODES = "ACGTUNRYSWKMBDHV"
# Complement of every IUPAC code (U pairs with A; the complement is written in DNA, so U -> A -> T).
_COMPLEMENT_FROM = IUPAC_CODES + IUPAC_CODES.lower()
_COMPLEMENT_TO = "TGCAANYRSWMKVHDB" + "TGCAANYRSWMKVHDB".lower()
_COMPLEMENT_STR = str.maketrans(_COMPLEMENT_FROM, _COMPLEMENT_TO)

#: Default chunk (nt) for scanning indexed files: peak memory is a small multiple of this.
DEFAULT_CHUNK_SIZE = 8 * 2**20
#: Show a progress bar when a segment scan covers more than this many nucleotides.
PROGRESS_MIN_NT = 50_000_000
_SNIFF_BYTES = 64 * 2**10


# Validation masks over byte values, derived from the one codec: accepted = any letter codec.encode knows
# (A, C, G, T, N and the IUPAC ambiguity codes, any case; = IUPAC_CODES), ACGT = codes 0..3.
_BYTE_CODES = codec.encode(bytes(range(256)))
_IUPAC_LUT = _BYTE_CODES != codec.INVALID
_ACGT_LUT = _BYTE_CODES < 4
_IUPAC_BYTES = bytes(np.flatnonzero(_IUPAC_LUT).tolist())
_ACGT_BYTES = bytes(np.flatnonzero(_ACGT_LUT).tolist())


class FastaNotFoundError(FastaFormatError, FileNotFoundError):
    """The FASTA path does not exist (also a ``FileNotFoundError``)."""


# --------------------------------------------------------------------------------------------------
# Sequence helpers
# --------------------------------------------------------------------------------------------------


def _as_bytes(seq) -> bytes:
    """ASCII bytes of ``seq``; each non-ASCII character becomes one '?', so positions are kept."""
    if isinstance(seq, str):
        return seq.encode("ascii", errors="replace")
    if isinstance(seq, (bytes, bytearray, memoryview)):
        return bytes(seq)
    raise ParameterError(
        f"expected a DNA sequence as a str, got {type(seq).__name__}. Pass the sequence text, e.g. 'ACGT'."
    )


def _first_bad(b: bytes, lut: np.ndarray) -> int:
    """0-based index of the first byte of ``b`` not allowed by ``lut``, or -1."""
    bad = np.flatnonzero(~lut[np.frombuffer(b, dtype=np.uint8)])
    return int(bad[0]) if bad.size else -1


def _describe_char(ch: str) -> str:
    names = {" ": "a space", "\t": "a tab", "\r": "a carriage return", "-": "a gap", "*": "a stop/asterisk"}
    if ch in names:
        return f"{ch!r} ({names[ch]})"
    if len(ch) == 1 and (ord(ch) < 32 or ord(ch) == 127):
        return f"{ch!r} (a control character)"
    return repr(ch)


def _check_alphabet(seq, allowed: bytes, lut: np.ndarray, *, where: str, allowed_text: str, fix: str) -> None:
    b = _as_bytes(seq)
    rest = b.translate(None, allowed)
    if not rest:
        return
    i = _first_bad(b, lut)
    ch = seq[i] if isinstance(seq, str) else chr(b[i])
    raise SequenceAlphabetError(
        f"{where}: position {i} (0-based) holds {_describe_char(ch)}, but only {allowed_text} are allowed "
        f"({len(rest)} of {len(b)} positions are not). {fix}"
    )


def _check_iupac(seq, *, where: str) -> None:
    _check_alphabet(
        seq, _IUPAC_BYTES, _IUPAC_LUT, where=where,
        allowed_text=f"IUPAC nucleotide codes ({IUPAC_CODES}, any case)",
        fix="Fix the sequence, e.g. replace unknown characters with N.",
    )


def check_acgt(seq: str, *, where: str = "sequence") -> None:
    """Raise :class:`SequenceAlphabetError` unless ``seq`` holds only A, C, G, T (any case).

    The message names ``where``, the first offending 0-based position and character, and the fix.
    """
    _check_alphabet(
        seq, _ACGT_BYTES, _ACGT_LUT, where=where, allowed_text="A, C, G, T (any case; N and other IUPAC codes are not)",
        fix="Split the sequence into ACGT-only runs with acgt_segments(seq) or Genome.segments(), or draw windows "
        "with sample_windows()/tile_windows(), which only return ACGT windows.",
    )


def _runs(mask: np.ndarray) -> np.ndarray:
    """(n, 2) int64 [start, end) of the maximal runs of True in a boolean vector."""
    if mask.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    d = np.diff(mask.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return np.column_stack((starts, ends)).astype(np.int64, copy=False)


def acgt_segments(seq: str, min_length: int = 1) -> np.ndarray:
    """Maximal runs of A/C/G/T (any case) in ``seq`` with length >= ``min_length`` nt.

    Returns an (n, 2) int64 array of 0-based half-open ``[start, end)`` pairs, in order.
    """
    min_length = check_int_range("min_length", min_length, 1, hint="It is the shortest segment kept, in nt.")
    runs = _runs(_ACGT_LUT[np.frombuffer(_as_bytes(seq), dtype=np.uint8)])
    if min_length > 1 and runs.size:
        runs = runs[(runs[:, 1] - runs[:, 0]) >= min_length]
    return runs


def _revcomp_unchecked(seq: str) -> str:
    return seq.translate(_COMPLEMENT_STR)[::-1]


def reverse_complement(seq: str) -> str:
    """Reverse complement of an IUPAC DNA sequence, keeping case (``'ACgN'`` -> ``'NcGT'``; U -> A)."""
    if not isinstance(seq, str):
        raise ParameterError(f"reverse_complement expects a str, got {type(seq).__name__}.")
    _check_iupac(seq, where="reverse_complement input")
    return _revcomp_unchecked(seq)


def gc_content(seq) -> float:
    """Fraction of G+C among the A/C/G/T bases of ``seq`` (any case; N and ambiguity codes ignored).

    Accepts a str, bytes or a :class:`Window`; returns ``nan`` when ``seq`` has no A/C/G/T base.
    """
    if isinstance(seq, Window):
        seq = seq.sequence
    counts = np.bincount(np.frombuffer(_as_bytes(seq), dtype=np.uint8), minlength=256)
    gc = int(counts[np.frombuffer(b"GCgc", dtype=np.uint8)].sum())
    at = int(counts[np.frombuffer(b"ATat", dtype=np.uint8)].sum())
    return gc / (gc + at) if gc + at else float("nan")


# --------------------------------------------------------------------------------------------------
# FASTA reading
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FastaRecord:
    """One FASTA record: ``name`` is the first word of the header, ``description`` the rest (may be '')."""

    name: str
    description: str
    sequence: str


_OTHER_COMPRESSION = {
    b"BZh": ("bzip2", "bunzip2 -c {p} | bgzip > {p2}.gz"),
    b"\xfd7zXZ\x00": ("xz", "xz -dc {p} | bgzip > {p2}.gz"),
    b"\x28\xb5\x2f\xfd": ("zstd", "zstd -dc {p} | bgzip > {p2}.gz"),
    b"PK\x03\x04": ("zip", "unzip -p {p} | bgzip > {p2}.gz"),
}


def _existing_file(path) -> Path:
    p = Path(os.fspath(path))
    if not p.exists():
        raise FastaNotFoundError(
            f"FASTA file not found: {p} (absolute path {p.absolute()}). Check the path and the current folder."
        )
    if p.is_dir():
        raise FastaFormatError(f"{p} is a folder, not a FASTA file. Pass the path of the .fa/.fasta(.gz) file inside it.")
    return p


def _sniff_compression(path: Path) -> str:
    """'plain', 'gzip' or 'bgzf', from the magic bytes (never the extension)."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] == b"\x1f\x8b":
        # BGZF = gzip member with the FEXTRA flag and a 'BC' extra subfield (SAM/BAM spec, section 4.1).
        if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC":
            return "bgzf"
        return "gzip"
    for magic, (tool, cmd) in _OTHER_COMPRESSION.items():
        if head.startswith(magic):
            stem = path.name.rsplit(".", 1)[0] if "." in path.name else path.name
            raise FastaFormatError(
                f"{path}: the file is compressed with {tool}, which cannot be read. FASTA files may be plain text, "
                f"gzip or bgzip. Fix: recompress it with bgzip, e.g. `{cmd.format(p=path, p2=stem)}`."
            )
    return "plain"


def _open_stream(path: Path, kind: str):
    return gzip.open(path, "rb") if kind in ("gzip", "bgzf") else open(path, "rb")


def _corrupt_gzip(path: Path, exc: BaseException) -> FastaFormatError:
    return FastaFormatError(
        f"{path}: the gzip data is corrupt or truncated ({type(exc).__name__}: {exc}). Re-download the file, "
        f"or check it with `gzip -t {path}`; recompress a good copy with bgzip."
    )


def _binary_error(path, data: bytes, offset: int, what: str, line: int | None = None) -> FastaFormatError:
    if line is None:
        line = data.count(b"\n", 0, offset) + 1
    return FastaFormatError(
        f"{path}:{line}: this is not a FASTA text file: it holds binary data ({what} at byte {offset} of the "
        "text). Pass the FASTA file itself (plain text, gzip or bgzip), not an index, BAM/CRAM, .2bit or other "
        "binary file."
    )


def _check_binary(path, data: bytes, *, truncated: bool) -> None:
    nul = data.find(b"\0")
    if nul >= 0:
        raise _binary_error(path, data, nul, "a NUL byte")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        if truncated and e.start >= len(data) - 3 and "unexpected end" in e.reason:
            return  # a multi-byte character cut by the peek window, not garbage
        raise _binary_error(path, data, e.start, f"undecodable byte 0x{data[e.start]:02x}") from None


def _sniff_text(path: Path, kind: str) -> bytes:
    """First 64 KiB of the (decompressed) text, after checks for an empty or binary file."""
    try:
        with _open_stream(path, kind) as fh:
            head = fh.read(_SNIFF_BYTES)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise _corrupt_gzip(path, e) from None
    if not head:
        after = " after decompression" if kind != "plain" else ""
        raise FastaFormatError(
            f"{path}: the file is empty{after} (no FASTA records). Expected a '>name' header line followed by "
            "sequence lines; check that the download or the step that wrote the file finished."
        )
    _check_binary(path, head, truncated=len(head) == _SNIFF_BYTES)
    return head


def _raise_bad_char(line: bytes, source, lineno: int, name: str):
    col0 = _first_bad(line, _IUPAC_LUT)
    byte = line[col0]
    if byte == 0:
        raise FastaFormatError(
            f"{source}:{lineno}:{col0 + 1}: this is not a FASTA text file: a NUL byte (binary data) appears in "
            f"the sequence of record {name!r}. Pass the FASTA file itself, not a binary file."
        )
    if byte >= 0x80:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FastaFormatError(
                f"{source}:{lineno}:{e.start + 1}: this is not a FASTA text file: undecodable byte "
                f"0x{line[e.start]:02x} (binary data) in the sequence of record {name!r}. Pass the FASTA file "
                "itself, not a binary or corrupted file."
            ) from None
        col0 = len(line[:col0].decode("utf-8"))
        ch = text[col0]
    else:
        ch = chr(byte)
    raise SequenceAlphabetError(
        f"{source}:{lineno}:{col0 + 1}: invalid character {_describe_char(ch)} in the sequence of record "
        f"{name!r} (line {lineno}, column {col0 + 1}). FASTA sequence lines may only hold IUPAC nucleotide codes "
        f"({IUPAC_CODES}, upper or lower case); gaps, '*', digits, spaces and protein letters are not allowed. "
        "Fix the file, e.g. replace the character with N (unknown base) or delete it."
    )


def _parse(lines: Iterable[bytes], source, *, uppercase: bool, complete: bool = True) -> Iterator[FastaRecord]:
    """Parse binary FASTA lines; ``complete=False`` for a prefix of a file (last record may be cut)."""
    seen: dict[str, int] = {}
    name = description = None
    header_line = 0
    chunks: list[bytes] = []

    def finish(next_thing: str) -> FastaRecord:
        if not chunks:
            raise FastaFormatError(
                f"{source}:{header_line}: record {name!r} has no sequence: its header is followed by "
                f"{next_thing}. Remove the empty record or add its sequence lines."
            )
        seq = b"".join(chunks)
        if uppercase:
            seq = seq.upper()
        return FastaRecord(name, description, seq.decode("ascii"))

    lineno = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        if line[:1] == b">":
            if name is not None:
                yield finish(f"another header on line {lineno}")
            try:
                text = line[1:].decode("utf-8")
            except UnicodeDecodeError as e:
                raise FastaFormatError(
                    f"{source}:{lineno}:{e.start + 2}: this is not a FASTA text file: undecodable byte "
                    f"0x{line[e.start + 1]:02x} (binary data) in a header line. Pass the FASTA file itself."
                ) from None
            if "\0" in text:
                raise FastaFormatError(
                    f"{source}:{lineno}: this is not a FASTA text file: a NUL byte (binary data) in a header line. "
                    "Pass the FASTA file itself, not a binary file."
                )
            fields = text.split(None, 1)
            if not fields:
                raise FastaFormatError(
                    f"{source}:{lineno}: header line {text!r} has no record name. Write a name right after '>' "
                    "(e.g. '>chr1 optional description'), with no space between."
                )
            name = fields[0]
            description = fields[1].strip() if len(fields) > 1 else ""
            if name in seen:
                raise FastaFormatError(
                    f"{source}:{lineno}: duplicate record name {name!r} (first used on line {seen[name]}). Record "
                    "names (the first word of each '>' header) must be unique; rename or remove one of the records."
                )
            seen[name] = header_line = lineno
            chunks = []
        else:
            if name is None:
                raise FastaFormatError(
                    f"{source}:{lineno}: no FASTA header: the first non-blank line must be a '>name' header, but "
                    f"line {lineno} starts with {line[:20].decode('utf-8', 'replace')!r}. Add a header such as "
                    "'>seq1' before the sequence, or check that this is a FASTA file."
                )
            if line.translate(None, _IUPAC_BYTES):
                _raise_bad_char(line, source, lineno, name)
            chunks.append(line)
    if name is None:
        if complete:
            raise FastaFormatError(
                f"{source}: no FASTA records found (the file holds only blank lines). Expected a '>name' header "
                "line followed by sequence lines."
            )
        return
    if complete or chunks:
        yield finish("the end of the file")


def _guarded_lines(fh, path: Path) -> Iterator[bytes]:
    try:
        yield from fh
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise _corrupt_gzip(path, e) from None


def iter_fasta(path, *, uppercase: bool = True) -> Iterator[FastaRecord]:
    """Yield the records of a plain, gzip or bgzip FASTA file (compression detected from magic bytes).

    Handles CRLF, blank lines and multi-line records; ``uppercase=False`` keeps soft-masking. Raises
    :class:`FastaFormatError` (empty/binary file, no header, nameless header, empty record, duplicate name)
    or :class:`SequenceAlphabetError` (non-IUPAC character), naming ``file:line[:column]`` and the fix.
    """
    path = _existing_file(path)
    kind = _sniff_compression(path)
    _sniff_text(path, kind)
    with _open_stream(path, kind) as fh:
        yield from _parse(_guarded_lines(fh, path), path, uppercase=uppercase)


def read_fasta(path, *, uppercase: bool = True) -> list[FastaRecord]:
    """All records of a FASTA file as a list; see :func:`iter_fasta`."""
    return list(iter_fasta(path, uppercase=uppercase))


def parse_fasta(text: str | bytes, *, source: str = "<text>", uppercase: bool = True) -> list[FastaRecord]:
    """Records of FASTA held in memory (``str`` or ``bytes``), with the same checks as :func:`read_fasta`;
    ``source`` names it in error messages."""
    data = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    return list(_parse(iter(data.splitlines(keepends=True)), source, uppercase=uppercase))


# --------------------------------------------------------------------------------------------------
# Index (.fai / .gzi) handling for pyfaidx
# --------------------------------------------------------------------------------------------------


def _cache_dir(path: Path) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()
    return root / "dnalm_utils" / "fai" / digest


def _index_pair(folder: Path, path: Path) -> tuple[Path, Path]:
    return folder / (path.name + ".fai"), folder / (path.name + ".gzi")


def _fresh(path: Path, fai: Path, gzi: Path, kind: str) -> bool:
    mtime = path.stat().st_mtime
    files = [fai, gzi] if kind == "bgzf" else [fai]
    return all(f.is_file() and f.stat().st_mtime >= mtime for f in files)


def _pyfaidx_source(path: Path, kind: str) -> Path:
    """Path pyfaidx should open: pyfaidx picks BGZF by extension, so fix a mismatching one with a symlink."""
    is_gz_name = path.name.lower().endswith((".gz", ".bgz"))
    if (kind == "bgzf") == is_gz_name:
        return path
    link_dir = _cache_dir(path)
    link_dir.mkdir(parents=True, exist_ok=True)
    link = link_dir / (path.name + (".gz" if kind == "bgzf" else ".fa"))
    target = path.resolve()
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return link
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)
    return link


_IRREGULAR = re.compile(r"Inconsistent line found in >(?P<name>.*) at line (?P<line>\d+)")
_BADNAME = re.compile(r"Bad sequence name (?P<hdr>.*) at line (?P<line>\d+)")


class _IrregularLines(FastaFormatError):
    pass


def _build_index(path: Path, src: Path, fai: Path, gzi: Path, kind: str) -> None:
    """Build ``fai`` (and ``gzi`` for bgzf) with pyfaidx in a temporary folder, then rename into place."""
    import pyfaidx

    fai.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".dnalm-fai-", dir=fai.parent))
    try:
        tfai, tgzi = tmp / fai.name, tmp / gzi.name
        try:
            fa = pyfaidx.Fasta(str(src), indexname=str(tfai), gzi_indexname=str(tgzi), as_raw=True,
                               duplicate_action="first")
        except pyfaidx.FastaIndexingError as e:
            msg = str(e)
            if m := _IRREGULAR.search(msg):
                raise _IrregularLines(
                    f"{path}:{m['line']}: record {m['name'].strip()!r} has lines of different lengths (or blank "
                    "lines inside it), so it cannot be indexed for random access. Rewrap the file to a fixed line "
                    "width, e.g. `seqkit seq -w 60 in.fa > out.fa`, or pass a larger max_in_memory_bytes to read "
                    "it into memory."
                ) from None
            if m := _BADNAME.search(msg):
                raise FastaFormatError(
                    f"{path}:{int(m['line']) + 1}: header line {m['hdr']!r} has no record name. Write a name "
                    "right after '>' (e.g. '>chr1 optional description'), with no space between."
                ) from None
            raise FastaFormatError(f"{path}: cannot index the FASTA file: {msg}") from None
        except UnicodeDecodeError as e:
            raise FastaFormatError(
                f"{path}: this is not a FASTA text file: it holds binary data (undecodable byte at offset "
                f"{e.start} of a line) after its first 64 KiB. Pass a valid FASTA text file."
            ) from None
        fa.close()
        # never older than the FASTA (its mtime may lie in the future), so the index counts as fresh
        stamp = max(path.stat().st_mtime, tfai.stat().st_mtime)
        for built, final in ((tgzi, gzi), (tfai, fai)) if kind == "bgzf" else ((tfai, fai),):
            os.utime(built, (stamp, stamp))
            os.replace(built, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_fai(fai: Path) -> list[tuple[str, int, int, int, int]]:
    rows = []
    with open(fai, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n\r").split("\t")
            try:
                rows.append((parts[0], *map(int, parts[1:5])))
            except (ValueError, IndexError):
                raise FastaFormatError(
                    f"{fai}:{i}: malformed FASTA index line {line.strip()!r}. Delete {fai} so it is rebuilt."
                ) from None
    return rows


def _count_newlines(path: Path, kind: str, upto: int) -> int:
    """Number of b'\\n' in the first ``upto`` bytes of the (decompressed) file; used only for messages."""
    n, left = 0, upto
    with _open_stream(path, kind) as fh:
        while left > 0:
            block = fh.read(min(left, 16 * 2**20))
            if not block:
                break
            n += block.count(b"\n")
            left -= len(block)
    return n


# --------------------------------------------------------------------------------------------------
# Genome
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A window ``[start, end)`` on record ``name``; ``sequence`` is upper-case, reverse-complemented if strand '-'."""

    name: str
    start: int
    end: int
    strand: str
    sequence: str

    @property
    def locus(self) -> str:
        """Human-readable 1-based locus, e.g. ``chr22:20,865,521-20,865,580 (+)``; record names of the form
        ``chrom:start-end`` (1-based, like the bundled held-out slice) are resolved to chromosome coordinates."""
        m = re.fullmatch(r"(.+):(\d+)-(\d+)", self.name)
        chrom, offset = (m.group(1), int(m.group(2)) - 1) if m else (self.name, 0)
        return f"{chrom}:{offset + self.start + 1:,}-{offset + self.end:,} ({self.strand})"


class Genome:
    """One interface over an in-memory or an indexed (pyfaidx) FASTA.

    Attributes: ``names`` (record names in file order), ``lengths`` (name -> length in nt), ``path``
    (source file or None), ``backend`` ('memory' or 'pyfaidx'). Use :meth:`open`, :meth:`from_records` or
    :meth:`from_sequences` to build one. Coordinates are 0-based half-open ``[start, end)``.
    """

    def __init__(self, *, names, lengths, path=None, backend="memory", seqs=None, descriptions=None,
                 fasta=None, fai=None, kind="plain"):
        self.names: list[str] = list(names)
        self.lengths: dict[str, int] = dict(lengths)
        self.path: Path | None = None if path is None else Path(path)
        self.backend: str = backend
        self.descriptions: dict[str, str] = dict(descriptions or {})
        self._seqs: dict[str, str] | None = seqs
        self._fasta = fasta
        self._fai = fai
        self._kind = kind
        self._fai_rows: dict[str, tuple] = {}
        self._base_segments: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._segment_cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    # ---- construction ------------------------------------------------------------------------------

    @classmethod
    def from_records(cls, records: Iterable[FastaRecord]) -> "Genome":
        """In-memory genome from FASTA records (names must be unique, sequences IUPAC and non-empty)."""
        return cls._from_records(records, path=None)

    @classmethod
    def from_sequences(cls, mapping: dict[str, str]) -> "Genome":
        """In-memory genome from ``{name: sequence}``."""
        if not hasattr(mapping, "items"):
            raise ParameterError(f"from_sequences expects a dict name -> sequence, got {type(mapping).__name__}.")
        return cls._from_records((FastaRecord(n, "", s) for n, s in mapping.items()), path=None)

    @classmethod
    def _from_records(cls, records, path) -> "Genome":
        seqs: dict[str, str] = {}
        descriptions: dict[str, str] = {}
        for rec in records:
            if not isinstance(rec, FastaRecord):
                raise ParameterError(f"expected FastaRecord objects, got {type(rec).__name__}.")
            name, seq = rec.name, rec.sequence
            if not isinstance(name, str) or not name or any(c.isspace() for c in name):
                raise ParameterError(f"record name {name!r} must be a non-empty string without whitespace.")
            if name in seqs:
                raise ParameterError(f"duplicate record name {name!r}; record names must be unique.")
            if not isinstance(seq, str):
                raise ParameterError(f"record {name!r}: the sequence must be a str, got {type(seq).__name__}.")
            if not seq:
                raise ParameterError(f"record {name!r} has an empty sequence; remove it or give it a sequence.")
            _check_iupac(seq, where=f"record {name!r}")
            seqs[name] = seq
            descriptions[name] = rec.description
        if not seqs:
            raise ParameterError("no records given: a Genome needs at least one sequence.")
        return cls(names=list(seqs), lengths={n: len(s) for n, s in seqs.items()}, path=path,
                   backend="memory", seqs=seqs, descriptions=descriptions)

    @classmethod
    def open(cls, path, *, max_in_memory_bytes: int = 512 * 2**20) -> "Genome":
        """Open a FASTA file: plain or bgzip via pyfaidx random access, small plain gzip into memory.

        The ``.fai`` (and ``.gzi``) index is built next to the file, or under
        ``~/.cache/dnalm_utils/fai/<sha256 of the absolute path>/`` when that folder is read-only. Plain
        gzip is read into memory only if ``4 * compressed size <= max_in_memory_bytes``; larger ones raise
        with advice to bgzip or gunzip them. A plain file with irregular line lengths (not indexable) is
        read into memory if it is at most ``max_in_memory_bytes``. Only the first 64 KiB are validated up
        front; the rest is checked by :meth:`segments`.
        """
        path = _existing_file(path)
        max_in_memory_bytes = check_int_range("max_in_memory_bytes", max_in_memory_bytes, 0)
        kind = _sniff_compression(path)
        head = _sniff_text(path, kind)
        if len(head) == _SNIFF_BYTES and b"\n" in head:
            head = head[: head.rfind(b"\n") + 1]  # only complete lines
        for _ in _parse(head.splitlines(keepends=True), path, uppercase=False, complete=len(head) < _SNIFF_BYTES):
            pass
        size = path.stat().st_size
        if kind == "gzip":
            if size * 4 > max_in_memory_bytes:
                plain = path.name[:-3] if path.name.lower().endswith(".gz") else path.name + ".fa"
                raise FastaFormatError(
                    f"{path} is compressed with plain gzip ({size / 2**20:.1f} MiB), which allows no random "
                    f"access, and reading it into memory would need about {4 * size / 2**20:.0f} MiB "
                    f"(max_in_memory_bytes={max_in_memory_bytes}). Fix: recompress it with bgzip (from htslib/"
                    f"samtools): `gunzip -c {path} | bgzip > {plain}.gz` (then open the new file), or decompress it "
                    f"with `gunzip {path}` and open the plain file; or raise max_in_memory_bytes."
                )
            return cls._from_records(read_fasta(path, uppercase=False), path=path)
        try:
            return cls._open_indexed(path, kind)
        except _IrregularLines as e:
            in_memory = size * 4 if kind == "bgzf" else size
            if in_memory <= max_in_memory_bytes:
                return cls._from_records(read_fasta(path, uppercase=False), path=path)
            raise FastaFormatError(str(e)) from None

    @classmethod
    def _open_indexed(cls, path: Path, kind: str) -> "Genome":
        import pyfaidx

        src = _pyfaidx_source(path, kind)
        local = _index_pair(path.parent, path)
        cache = _index_pair(_cache_dir(path), path)
        chosen = next((pair for pair in (local, cache) if _fresh(path, *pair, kind)), None)
        if chosen is None:
            candidates = [local, cache] if os.access(path.parent, os.W_OK) else [cache]
            errors = []
            for pair in candidates:
                try:
                    _build_index(path, src, *pair, kind)
                except OSError as e:  # read-only folder (e.g. NFS root-squash): try the per-user cache
                    errors.append(f"{pair[0].parent}: {e}")
                    continue
                chosen = pair
                break
            if chosen is None:
                raise OSError(f"cannot write a FASTA index for {path} in any of: {'; '.join(errors)}. "
                              "Make one of these folders writable or set XDG_CACHE_HOME to a writable folder.")
        fai, gzi = chosen
        rows = _read_fai(fai)
        seen: dict[str, tuple] = {}
        for row in rows:
            name, rlen, offset = row[0], row[1], row[2]
            if name in seen:
                first = _count_newlines(path, kind, seen[name][2])
                again = _count_newlines(path, kind, offset)
                raise FastaFormatError(
                    f"{path}:{again}: duplicate record name {name!r} (first used on line {first}). Record names "
                    "(the first word of each '>' header) must be unique; rename or remove one of the records."
                )
            if rlen == 0:
                line = _count_newlines(path, kind, offset)
                raise FastaFormatError(
                    f"{path}:{line}: record {name!r} has no sequence. Remove the empty record or add its sequence."
                )
            seen[name] = row
        try:
            fasta = pyfaidx.Fasta(str(src), indexname=str(fai), gzi_indexname=str(gzi), as_raw=True,
                                  build_index=False, rebuild=False, duplicate_action="first")
        except (pyfaidx.FastaIndexingError, pyfaidx.IndexNotFoundError, ValueError) as e:
            raise FastaFormatError(f"{path}: cannot read its index {fai} ({e}). Delete {fai} and reopen.") from None
        genome = cls(names=[r[0] for r in rows], lengths={r[0]: r[1] for r in rows}, path=path,
                     backend="pyfaidx", fasta=fasta, fai=fai, kind=kind)
        genome._fai_rows = seen
        return genome

    # ---- container protocol ------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of records."""
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __contains__(self, name) -> bool:
        return name in self.lengths

    @property
    def total_length(self) -> int:
        """Sum of record lengths, in nt."""
        return int(sum(self.lengths.values()))

    def __repr__(self) -> str:
        src = f"{str(self.path)!r}, " if self.path is not None else ""
        return f"Genome({src}{len(self)} records, {self.total_length:,} nt, backend={self.backend!r})"

    def close(self) -> None:
        """Close the underlying file (indexed genomes); the object is unusable afterwards."""
        if self._fasta is not None:
            self._fasta.close()
            self._fasta = None

    def __enter__(self) -> "Genome":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- access ------------------------------------------------------------------------------------

    def _check_name(self, name) -> None:
        if name not in self.lengths:
            shown = ", ".join(repr(n) for n in self.names[:10]) + (", ..." if len(self.names) > 10 else "")
            raise ParameterError(
                f"unknown record name {name!r}; this genome has {len(self.names)} records: {shown}. Names are the "
                "first word of each FASTA header (check e.g. 'chr1' vs '1')."
            )

    def region(self, text: str) -> "Genome":
        """In-memory genome holding one region, ``"name"`` or ``"name:start-end"`` (1-based, inclusive, commas
        allowed, as samtools writes it). The record is named ``name:start-end``, so :attr:`Window.locus` of
        windows drawn from it gives coordinates on ``name``."""
        name, start, end = parse_region(text)
        self._check_name(name)
        length = self.lengths[name]
        end = length if end is None else end
        if end > length or start >= end:
            raise ParameterError(
                f"region {text!r} is outside record {name!r}, which has {length:,} nt; use 1-based inclusive "
                f"coordinates with 1 <= start <= end <= {length:,}, e.g. '{name}:1-{min(length, 100000)}'."
            )
        return Genome.from_sequences({f"{name}:{start + 1}-{end}": self.fetch(name, start, end)})

    def _read(self, name: str, start: int, end: int) -> str:
        """Raw text [start, end) of a record (original case, unchecked bounds)."""
        if self._seqs is not None:
            return self._seqs[name][start:end]
        if self._fasta is None:
            raise ParameterError(f"genome {self.path} has been closed; open it again with Genome.open.")
        try:
            return self._fasta.faidx.fetch(name, start + 1, end)
        except UnicodeDecodeError:
            raise FastaFormatError(
                f"{self.path}: record {name!r} holds binary (non-text) bytes in [{start}, {end}). Pass a valid "
                "FASTA text file."
            ) from None

    def fetch(self, name: str, start: int, end: int, *, strand: str = "+") -> str:
        """Upper-case sequence of ``name[start:end]`` (0-based, half-open); reverse complement if strand '-'."""
        self._check_name(name)
        length = self.lengths[name]
        hint = f"Record {name!r} has {length} nt; coordinates are 0-based half-open [start, end)."
        start = check_int_range("start", start, 0, length, hint=hint)
        end = check_int_range("end", end, 0, length, hint=hint)
        if start > end:
            raise ParameterError(
                f"interval {name}:{start}-{end} has start > end; coordinates are 0-based half-open [start, end) "
                f"with 0 <= start <= end <= {length}."
            )
        if strand not in ("+", "-"):
            raise ParameterError(f"strand must be '+' or '-', got {strand!r}.")
        if start == end:
            return ""
        seq = self._read(name, start, end)
        if len(seq) != end - start:
            raise FastaFormatError(
                f"{self.path}: read {len(seq)} nt instead of {end - start} from {name}:{start}-{end}; the file "
                f"changed after it was indexed. Delete {self._fai} and reopen it."
            )
        if self._seqs is None:
            _check_iupac(seq, where=f"{self.path} record {name!r} [{start}, {end})")
        seq = seq.upper()
        return _revcomp_unchecked(seq) if strand == "-" else seq

    # ---- ACGT segments -----------------------------------------------------------------------------

    def _raise_alphabet(self, name: str, chunk_start: int, chunk: str) -> None:
        i = _first_bad(_as_bytes(chunk), _IUPAC_LUT)
        pos = chunk_start + i
        ch = _describe_char(chunk[i])
        row = self._fai_rows.get(name)
        if row is not None and row[3] > 0:
            _, _, offset, lenc, _ = row
            first_line = _count_newlines(self.path, self._kind, offset) + 1
            where = f"{self.path}:{first_line + pos // lenc}:{pos % lenc + 1}"
        else:
            where = f"{self.path or 'genome'}: record {name!r}"
        raise SequenceAlphabetError(
            f"{where}: invalid character {ch} in record {name!r} at 0-based position {pos}. FASTA sequence lines "
            f"may only hold IUPAC nucleotide codes ({IUPAC_CODES}, upper or lower case). Fix the file, e.g. "
            "replace the character with N (unknown base) or delete it."
        )

    def _scan(self, chunk_size: int | None, progress: bool | None):
        from tqdm import tqdm

        chunk_size = check_int_range("chunk_size", DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size, 1)
        total = self.total_length
        if progress is None:
            progress = total > PROGRESS_MIN_NT
        idx_parts, start_parts, end_parts = [], [], []

        def emit(i: int, runs: np.ndarray) -> None:
            if runs.size:
                idx_parts.append(np.full(len(runs), i, dtype=np.int32))
                start_parts.append(runs[:, 0])
                end_parts.append(runs[:, 1])

        with tqdm(total=total, unit="nt", unit_scale=True, desc="ACGT segments", disable=not progress) as bar:
            for i, name in enumerate(self.names):
                length = self.lengths[name]
                open_start = None  # start of a run that reached the previous chunk's end
                for cs in range(0, length, chunk_size):
                    ce = min(cs + chunk_size, length)
                    text = self._read(name, cs, ce)
                    if len(text) != ce - cs:
                        raise FastaFormatError(
                            f"{self.path}: read {len(text)} nt instead of {ce - cs} from {name}:{cs}-{ce}; the "
                            f"file changed after it was indexed. Delete {self._fai} and reopen it."
                        )
                    raw = _as_bytes(text)
                    if raw.translate(None, _IUPAC_BYTES):
                        self._raise_alphabet(name, cs, text)
                    runs = _runs(_ACGT_LUT[np.frombuffer(raw, dtype=np.uint8)]) + cs
                    if open_start is not None:
                        if runs.size and runs[0, 0] == cs:
                            runs[0, 0] = open_start
                        else:
                            emit(i, np.array([[open_start, cs]], dtype=np.int64))
                        open_start = None
                    if runs.size and runs[-1, 1] == ce and ce < length:
                        open_start = int(runs[-1, 0])
                        runs = runs[:-1]
                    emit(i, runs)
                    bar.update(ce - cs)

        def cat(parts, dtype):
            return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype=dtype)

        return cat(idx_parts, np.int32), cat(start_parts, np.int64), cat(end_parts, np.int64)

    def _segment_arrays(self, min_length: int = 1, *, chunk_size: int | None = None,
                        progress: bool | None = None):
        """(record index int32, start int64, end int64) of ACGT runs >= min_length nt, in genome order."""
        if min_length not in self._segment_cache:
            if self._base_segments is None:
                self._base_segments = self._scan(chunk_size, progress)
            idx, starts, ends = self._base_segments
            keep = (ends - starts) >= min_length
            self._segment_cache[min_length] = (idx[keep], starts[keep], ends[keep])
        return self._segment_cache[min_length]

    def segments(self, min_length: int = 1, *, chunk_size: int | None = None,
                 progress: bool | None = None) -> pd.DataFrame:
        """ACGT-only runs of length >= ``min_length`` nt: DataFrame with columns name, start, end ([start, end)).

        Records are scanned once, ``chunk_size`` nt at a time (default 8 Mi; runs crossing chunk borders are
        merged), which for indexed files also validates the alphabet; results are cached on the object
        (``chunk_size`` only affects that first scan). ``progress=None`` shows a tqdm bar for genomes over 50 Mb.
        """
        min_length = check_int_range("min_length", min_length, 1, hint="It is the shortest segment kept, in nt.")
        idx, starts, ends = self._segment_arrays(min_length, chunk_size=chunk_size, progress=progress)
        names = np.array(self.names, dtype=object)
        return pd.DataFrame({"name": names[idx], "start": starts.copy(), "end": ends.copy()})


# --------------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------------


def _selected(genome: Genome, names) -> np.ndarray | None:
    """Record indices chosen by ``names`` (None = all)."""
    if names is None:
        return None
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise ParameterError("names is empty; pass None for all records or a list of record names.")
    for n in names:
        genome._check_name(n)
    pos = {n: i for i, n in enumerate(genome.names)}
    return np.array(sorted({pos[n] for n in names}), dtype=np.int32)


def _window_segments(genome: Genome, length: int, names):
    idx, starts, ends = genome._segment_arrays(length)
    chosen = _selected(genome, names)
    if chosen is not None:
        keep = np.isin(idx, chosen)
        idx, starts, ends = idx[keep], starts[keep], ends[keep]
    if starts.size == 0:
        all_idx, all_starts, all_ends = genome._segment_arrays(1)
        if chosen is not None:
            keep = np.isin(all_idx, chosen)
            all_idx, all_starts, all_ends = all_idx[keep], all_starts[keep], all_ends[keep]
        which = "the chosen records" if chosen is not None else "this genome"
        if all_starts.size == 0:
            raise ParameterError(
                f"{which} contain no A/C/G/T base at all (only N or other ambiguity codes), so no window of "
                f"{length} nt can be drawn. Choose other records."
            )
        k = int(np.argmax(all_ends - all_starts))
        longest = int(all_ends[k] - all_starts[k])
        raise ParameterError(
            f"no ACGT-only segment of {which} is at least {length} nt long: the longest is "
            f"{genome.names[all_idx[k]]}:{all_starts[k]}-{all_ends[k]} ({longest} nt). Use a shorter window "
            f"(length <= {longest}) or other records."
        )
    return idx, starts, ends


def _strand_mode(reverse_complement) -> str:
    if isinstance(reverse_complement, (bool, np.bool_)):
        return "-" if reverse_complement else "+"
    if reverse_complement == "random":
        return "random"
    raise ParameterError(
        f"reverse_complement={reverse_complement!r} is not allowed: use False (all '+'), True (all '-') or "
        "'random' (each strand with probability 0.5)."
    )


def parse_region(text: str) -> tuple[str, int, int | None]:
    """``"chr1"`` -> ("chr1", 0, None); ``"chr1:1,001-2,000"`` -> ("chr1", 1000, 2000): 1-based inclusive text
    to 0-based half-open coordinates (None = to the end of the record)."""
    if not isinstance(text, str) or not text.strip():
        raise ParameterError(f"region={text!r}: pass 'name' or 'name:start-end' (1-based, inclusive), e.g. 'chr22:1-100000'.")
    m = re.fullmatch(r"\s*(\S+?)(?::([\d,]+)-([\d,]+))?\s*", text)
    if m is None:
        raise ParameterError(f"region={text!r} is not 'name' or 'name:start-end' (1-based, inclusive), e.g. 'chr22:1-100000'.")
    name, a, b = m.groups()
    if a is None:
        return name, 0, None
    start, end = int(a.replace(",", "")), int(b.replace(",", ""))
    if start < 1 or end < start:
        raise ParameterError(f"region={text!r}: coordinates are 1-based and inclusive, so 1 <= start <= end.")
    return name, start - 1, end


def sample_windows(genome: Genome, n: int, length: int, *, seed: int, reverse_complement: bool | str = False,
                   names: list[str] | None = None) -> list[Window]:
    """Draw ``n`` windows of ``length`` nt, with replacement, uniformly over all valid ACGT-only starts.

    Every start ``s`` with ``[s, s + length)`` inside one ACGT segment of the chosen records is equally
    likely. ``reverse_complement``: False (strand '+'), True (all '-') or 'random' (each strand with p=0.5,
    drawn from the same generator after the starts). Windows are returned in draw order; the same seed gives
    the same windows.
    """
    n = check_int_range("n", n, 1, hint="It is the number of windows to draw.")
    length = check_int_range("length", length, 1, hint="It is the window length in nt.")
    seed = check_int_range("seed", seed, 0, hint="Pass a fixed non-negative integer for reproducibility.")
    mode = _strand_mode(reverse_complement)
    idx, starts, ends = _window_segments(genome, length, names)
    counts = ends - starts - (length - 1)  # valid starts per segment (all >= 1)
    cum = np.cumsum(counts)
    rng = np.random.default_rng(seed)
    r = rng.integers(0, cum[-1], size=n, dtype=np.int64)
    seg = np.searchsorted(cum, r, side="right")
    pos = starts[seg] + (r - (cum[seg] - counts[seg]))
    if mode == "random":
        minus = rng.random(n) < 0.5
    else:
        minus = np.full(n, mode == "-")
    out = []
    for i, s, m in zip(idx[seg].tolist(), pos.tolist(), minus.tolist()):
        name = genome.names[i]
        strand = "-" if m else "+"
        out.append(Window(name, s, s + length, strand, genome.fetch(name, s, s + length, strand=strand)))
    return out


def tile_windows(genome: Genome, length: int, *, stride: int | None = None, names: list[str] | None = None,
                 max_windows: int | None = None) -> list[Window]:
    """Deterministic tiling: windows of ``length`` nt every ``stride`` nt (default ``length``, no overlap).

    Each ACGT segment is tiled from its start; windows are '+' strand and in genome order (record order,
    then position), truncated to the first ``max_windows``.
    """
    length = check_int_range("length", length, 1, hint="It is the window length in nt.")
    stride = length if stride is None else check_int_range("stride", stride, 1, hint="It is the step in nt.")
    if max_windows is not None:
        max_windows = check_int_range("max_windows", max_windows, 1)
    idx, starts, ends = _window_segments(genome, length, names)
    counts = (ends - starts - length) // stride + 1
    if max_windows is not None and counts.sum() > max_windows:
        cum = np.cumsum(counts)
        last = int(np.searchsorted(cum, max_windows, side="left"))
        counts = counts[: last + 1].copy()
        counts[-1] -= int(cum[last]) - max_windows
        idx, starts = idx[: last + 1], starts[: last + 1]
    seg = np.repeat(np.arange(counts.size), counts)
    first = np.cumsum(counts) - counts
    pos = starts[seg] + (np.arange(seg.size) - first[seg]) * stride
    out = []
    for i, s in zip(idx[seg].tolist(), pos.tolist()):
        name = genome.names[i]
        out.append(Window(name, s, s + length, "+", genome.fetch(name, s, s + length)))
    return out
