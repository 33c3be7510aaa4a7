"""Tests for dnalm_utils.genome: FASTA reading, ACGT segments, Genome backends, window sampling."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnalm_utils.errors import DnalmInputError, FastaFormatError, ParameterError, SequenceAlphabetError
from dnalm_utils.genome import (
    FastaNotFoundError,
    FastaRecord,
    Genome,
    Window,
    acgt_segments,
    check_acgt,
    gc_content,
    iter_fasta,
    read_fasta,
    reverse_complement,
    sample_windows,
    tile_windows,
)
from dnalm_utils.io import gzip_bytes

IUPAC = "ACGTUNRYSWKMBDHV"


def fasta_text(records: dict[str, str], width: int = 60, newline: str = "\n") -> str:
    out = []
    for name, seq in records.items():
        out.append(f">{name}")
        out.extend(seq[i: i + width] for i in range(0, len(seq), width))
    return newline.join(out) + newline


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def random_genome(seed: int, lengths=(5000, 3000, 800), n_runs=6) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    out = {}
    for i, n in enumerate(lengths):
        arr = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, n)].copy()
        for _ in range(n_runs):
            s = int(rng.integers(0, n))
            arr[s: s + int(rng.integers(1, 60))] = ord("N")
        out[f"chr{i + 1}"] = arr.tobytes().decode()
    return out


def brute_segments(seq: str, min_length: int = 1) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, c in enumerate(seq + "$"):
        if c in "ACGTacgt":
            if start is None:
                start = i
        elif start is not None:
            if i - start >= min_length:
                runs.append((start, i))
            start = None
    return runs


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Keep any per-user index cache inside the test's temporary folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


# --------------------------------------------------------------------------------------------------
# read_fasta / iter_fasta
# --------------------------------------------------------------------------------------------------

RECS = {"chr1": "ACGTNNNNacgtac" * 10, "chr2": "GGGGCCCCnnAT", "chrM": "T" * 61}


def test_plain_gzip_and_bgzip_give_the_same_records(tmp_path):
    from Bio import bgzf

    text = fasta_text(RECS, width=7)
    plain = write(tmp_path / "g.fa", text)
    gz = write(tmp_path / "g.fa.gz", gzip_bytes(text.encode()))
    bgz = tmp_path / "g.bgz.gz"
    with bgzf.BgzfWriter(str(bgz), "wb") as fh:
        fh.write(text.encode())
    # magic bytes, not the extension, decide: a gzip file named .txt is still read
    odd = write(tmp_path / "g.txt", gzip_bytes(text.encode()))
    want = read_fasta(plain)
    assert [r.name for r in want] == ["chr1", "chr2", "chrM"]
    assert want[0].sequence == RECS["chr1"].upper()
    for p in (gz, bgz, odd):
        assert read_fasta(p) == want
    assert list(iter_fasta(gz)) == want


def test_crlf_blank_lines_soft_masking_and_descriptions(tmp_path):
    text = "\r\n>chr1 first record\r\nACGTnn\r\n\r\nacGT\r\n\r\n>chr2\tsecond  one \r\nNNNN\r\nAC\r\n"
    p = write(tmp_path / "crlf.fa", text)
    recs = read_fasta(p)
    assert recs == [FastaRecord("chr1", "first record", "ACGTNNACGT"), FastaRecord("chr2", "second  one", "NNNNAC")]
    soft = read_fasta(p, uppercase=False)
    assert soft[0].sequence == "ACGTnnacGT"
    # a file with no final newline and IUPAC ambiguity codes
    q = write(tmp_path / "iupac.fa", ">x\n" + IUPAC + IUPAC.lower())
    assert read_fasta(q)[0].sequence == IUPAC * 2


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FastaNotFoundError, match="not found"):
        read_fasta(tmp_path / "nope.fa")
    with pytest.raises(FileNotFoundError):
        Genome.open(tmp_path / "nope.fa")
    with pytest.raises(FastaFormatError, match="folder"):
        read_fasta(tmp_path)


BAD_FORMAT = [
    # (file bytes, line number expected in the message or None, words expected in the message)
    (b"", None, ["empty"]),
    (b"\n\n  \n", None, ["no FASTA records"]),
    (b"ACGT\n>x\nAC\n", 1, ["no FASTA header", "'>name'"]),
    (b"\n;comment\n>x\nAC\n", 2, ["no FASTA header"]),
    (b">x\nACGT\n>\nACGT\n", 3, ["no record name"]),
    (b">x\nACGT\n>  \nACGT\n", 3, ["no record name"]),
    (b">a\nACGT\n>b desc\nGG\n>a again\nTT\n", 5, ["duplicate record name 'a'", "line 1", "unique"]),
    (b">a\n>b\nACGT\n", 1, ["'a' has no sequence"]),
    (b">a\nACGT\n>b\n\n", 3, ["'b' has no sequence"]),
    (b"\x00\x01\x02\x03BINARY\x00" * 50, 1, ["not a FASTA text file", "NUL"]),
    (bytes(range(128, 256)) * 4, 1, ["not a FASTA text file", "undecodable"]),
    (b">x\nACGT\nAC\x00GT\n", 3, ["not a FASTA text file", "NUL"]),
    (b">x\nACGT\nAC\xff\xfeGT\n", 3, ["not a FASTA text file", "undecodable"]),
]


@pytest.mark.parametrize("data, line, words", BAD_FORMAT)
@pytest.mark.parametrize("reader", [read_fasta, Genome.open], ids=["read_fasta", "Genome.open"])
def test_bad_files_raise_fasta_format_error(tmp_path, data, line, words, reader):
    p = write(tmp_path / "bad_input.fa", data)
    with pytest.raises(FastaFormatError) as err:
        reader(p)
    msg = str(err.value)
    assert "bad_input.fa" in msg
    if line is not None:
        assert f"bad_input.fa:{line}:" in msg
    for w in words:
        assert w in msg
    assert isinstance(err.value, DnalmInputError)


def test_bad_gzip_files(tmp_path):
    p = write(tmp_path / "empty.fa.gz", gzip_bytes(b""))
    with pytest.raises(FastaFormatError, match="empty after decompression"):
        read_fasta(p)
    data = gzip_bytes(fasta_text(random_genome(1)).encode())
    p = write(tmp_path / "cut.fa.gz", data[: len(data) // 2])
    with pytest.raises(FastaFormatError, match="corrupt or truncated"):
        read_fasta(p)
    import bz2

    p = write(tmp_path / "x.fa.bz2", bz2.compress(b">x\nACGT\n"))
    with pytest.raises(FastaFormatError, match="bzip2.*bgzip"):
        read_fasta(p)


@pytest.mark.parametrize(
    "line_text, col, char",
    [("ACGTXACGT", 5, "'X'"), ("@CGT", 1, "'@'"), ("AC-GT", 3, "gap"), ("ACG T", 4, "space"),
     ("ACGT*", 5, "'*'"), ("ACGTé", 5, "'é'"), ("ACGT1", 5, "'1'")],
)
def test_bad_character_names_file_line_column(tmp_path, line_text, col, char):
    text = ">seq1 desc\nACGTACGT\n\n>seq2\nAAAA\n" + line_text + "\nCCCC\n"
    p = write(tmp_path / "alpha.fa", text)
    with pytest.raises(SequenceAlphabetError) as err:
        read_fasta(p)
    msg = str(err.value)
    assert f"alpha.fa:6:{col}:" in msg and char in msg and "'seq2'" in msg and "replace" in msg
    with pytest.raises(SequenceAlphabetError, match=f"alpha.fa:6:{col}:"):
        Genome.open(p)  # inside the first 64 KiB: caught by the up-front check


# --------------------------------------------------------------------------------------------------
# Sequence helpers
# --------------------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.text(alphabet="ACGTacgtNnRy-", max_size=200), st.integers(1, 8))
def test_acgt_segments_match_brute_force(seq, min_length):
    got = acgt_segments(seq, min_length)
    assert got.dtype == np.int64 and got.shape[1] == 2
    assert [tuple(r) for r in got.tolist()] == brute_segments(seq, min_length)


def test_acgt_segments_examples():
    assert acgt_segments("").shape == (0, 2)
    assert acgt_segments("NNNN").shape == (0, 2)
    assert acgt_segments("ACGT").tolist() == [[0, 4]]
    assert acgt_segments("NNacNNNgtacN", min_length=3).tolist() == [[7, 11]]
    with pytest.raises(ParameterError, match="min_length"):
        acgt_segments("ACGT", 0)


@given(st.text(alphabet="ACGTNRYSWKMBDHVacgtnryswkmbdhv", max_size=300))
def test_reverse_complement_is_an_involution(seq):
    rc = reverse_complement(seq)
    assert len(rc) == len(seq)
    assert reverse_complement(rc) == seq
    assert [c.isupper() for c in rc] == [c.isupper() for c in reversed(seq)]


def test_reverse_complement_maps_bases():
    assert reverse_complement("ACGT") == "ACGT"
    assert reverse_complement("AAACCG") == "CGGTTT"
    assert reverse_complement("acgtN") == "Nacgt"
    assert reverse_complement("RYKMBVDH") == "DHBVKMRY"
    assert reverse_complement("U") == "A"
    with pytest.raises(SequenceAlphabetError, match="position 2.*'X'"):
        reverse_complement("ACXT")


def test_check_acgt_and_gc_content():
    check_acgt("ACGTacgt")
    check_acgt("")
    with pytest.raises(SequenceAlphabetError) as err:
        check_acgt("ACGTNNA", where="window 3")
    msg = str(err.value)
    assert "window 3" in msg and "position 4" in msg and "'N'" in msg and "acgt_segments" in msg
    assert gc_content("GGCC") == 1.0
    assert gc_content("ACGTNN") == 0.5
    assert gc_content("atgc") == 0.5
    assert np.isnan(gc_content("NNNN"))
    assert gc_content(Window("x", 0, 4, "+", "GAAA")) == 0.25


# --------------------------------------------------------------------------------------------------
# Genome
# --------------------------------------------------------------------------------------------------


def test_open_plain_uses_pyfaidx_and_fetch_matches_slicing(tmp_path):
    recs = random_genome(7)
    p = write(tmp_path / "g.fa", fasta_text(recs, width=50))
    g = Genome.open(p)
    assert g.backend == "pyfaidx"
    assert (tmp_path / "g.fa.fai").is_file()
    assert g.names == list(recs) and g.lengths == {k: len(v) for k, v in recs.items()}
    assert len(g) == 3 and "chr2" in g and "chrX" not in g and list(g) == g.names
    assert g.total_length == sum(map(len, recs.values())) and g.path == p
    rng = np.random.default_rng(0)
    for _ in range(300):
        name = g.names[rng.integers(0, 3)]
        n = g.lengths[name]
        s, e = sorted(rng.integers(0, n + 1, size=2).tolist())
        assert g.fetch(name, s, e) == recs[name][s:e]
        assert g.fetch(name, s, e, strand="-") == reverse_complement(recs[name][s:e])
    mem = Genome.from_sequences(recs)
    assert mem.backend == "memory" and mem.path is None
    pd.testing.assert_frame_equal(g.segments(), mem.segments())
    g.close()


def test_fetch_errors():
    g = Genome.from_sequences({"a": "ACGTACGT", "b": "acgtNN"})
    assert g.fetch("b", 0, 6) == "ACGTNN"
    assert g.fetch("a", 3, 3) == ""
    with pytest.raises(ParameterError, match="unknown record name 'c'.*'a', 'b'"):
        g.fetch("c", 0, 1)
    with pytest.raises(ParameterError, match="end=9 is out of range.*0-based half-open"):
        g.fetch("a", 0, 9)
    with pytest.raises(ParameterError, match="start=-1"):
        g.fetch("a", -1, 3)
    with pytest.raises(ParameterError, match="start > end"):
        g.fetch("a", 5, 3)
    with pytest.raises(ParameterError, match="strand"):
        g.fetch("a", 0, 3, strand="x")


def test_from_sequences_and_records_validate():
    with pytest.raises(SequenceAlphabetError, match="record 'a'.*position 2"):
        Genome.from_sequences({"a": "ACXT"})
    with pytest.raises(ParameterError, match="empty sequence"):
        Genome.from_sequences({"a": ""})
    with pytest.raises(ParameterError, match="no records"):
        Genome.from_sequences({})
    with pytest.raises(ParameterError, match="duplicate"):
        Genome.from_records([FastaRecord("a", "", "AC"), FastaRecord("a", "", "GT")])
    g = Genome.from_records([FastaRecord("a", "desc", "ACgt")])
    assert g.descriptions == {"a": "desc"} and g.fetch("a", 0, 4) == "ACGT"
    assert "1 records" in repr(g)


def test_small_gzip_is_read_into_memory_and_large_gzip_is_refused(tmp_path):
    recs = random_genome(3)
    p = write(tmp_path / "g.fa.gz", gzip_bytes(fasta_text(recs).encode()))
    g = Genome.open(p)
    assert g.backend == "memory" and g.path == p
    assert g.fetch("chr1", 10, 200) == recs["chr1"][10:200]
    size = p.stat().st_size
    with pytest.raises(FastaFormatError) as err:
        Genome.open(p, max_in_memory_bytes=4 * size - 1)
    msg = str(err.value)
    assert "g.fa.gz" in msg and "bgzip" in msg and "gunzip" in msg and "max_in_memory_bytes" in msg
    assert Genome.open(p, max_in_memory_bytes=4 * size).backend == "memory"


def test_bgzip_is_indexed_even_without_gz_extension(tmp_path):
    from Bio import bgzf

    recs = random_genome(4)
    for name in ("g.fa.gz", "g.fa"):
        p = tmp_path / name
        with bgzf.BgzfWriter(str(p), "wb") as fh:
            fh.write(fasta_text(recs).encode())
        g = Genome.open(p)
        assert g.backend == "pyfaidx"
        assert g.fetch("chr2", 100, 1700) == recs["chr2"][100:1700]
        pd.testing.assert_frame_equal(g.segments(chunk_size=97), Genome.from_sequences(recs).segments())
        g.close()
    assert (tmp_path / "g.fa.gz.gzi").is_file()


def test_read_only_folder_puts_index_in_user_cache(tmp_path, monkeypatch):
    recs = random_genome(5)
    folder = tmp_path / "ro"
    folder.mkdir()
    p = write(folder / "g.fa", fasta_text(recs))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda f, mode: False if Path(f) == folder else real_access(f, mode))
    g = Genome.open(p)
    assert not (folder / "g.fa.fai").exists()
    cached = list((tmp_path / "xdg-cache" / "dnalm_utils" / "fai").glob("*/g.fa.fai"))
    assert len(cached) == 1 and g._fai == cached[0]
    assert g.fetch("chr1", 0, 100) == recs["chr1"][:100]


def test_stale_index_is_rebuilt(tmp_path):
    p = write(tmp_path / "g.fa", fasta_text({"a": "ACGT" * 30}))
    assert Genome.open(p).lengths == {"a": 120}
    write(p, fasta_text({"a": "ACGT" * 10, "b": "GG"}))
    os.utime(p, (p.stat().st_atime, p.stat().st_mtime + 10))
    g = Genome.open(p)
    assert g.lengths == {"a": 40, "b": 2}


def test_irregular_lines_fall_back_to_memory_or_explain(tmp_path):
    p = write(tmp_path / "ragged.fa", ">a\nACGT\nACGTACGT\nAC\n>b\nGG\n")
    g = Genome.open(p)
    assert g.backend == "memory" and g.fetch("a", 0, 14) == "ACGTACGTACGTAC"
    with pytest.raises(FastaFormatError, match=r"ragged.fa:\d+: record 'a' has lines of different lengths.*seqkit"):
        Genome.open(p, max_in_memory_bytes=10)


def big_fasta_with_tail(tmp_path: Path, tail: str) -> Path:
    """A plain FASTA longer than the 64 KiB checked up front, with ``tail`` lines at its end."""
    text = fasta_text({"big": "ACGT" * 25_000}) + tail
    return write(tmp_path / "big.fa", text)


def test_problems_after_the_first_64k_are_still_reported(tmp_path):
    head_lines = 2 + -(-100_000 // 60)  # header + sequence lines + 1
    p = big_fasta_with_tail(tmp_path, ">small\nACGTACGT\nACGXAC\n")
    g = Genome.open(p)  # only the beginning is checked up front
    with pytest.raises(SequenceAlphabetError) as err:
        g.segments(chunk_size=1000)
    assert f"big.fa:{head_lines + 2}:4:" in str(err.value) and "'X'" in str(err.value)

    p = big_fasta_with_tail(tmp_path, ">small\nACGT\n>big dup\nACGT\n")
    with pytest.raises(FastaFormatError, match=f"big.fa:{head_lines + 2}: duplicate record name 'big'.*line 1"):
        Genome.open(p)

    p = big_fasta_with_tail(tmp_path, ">empty\n>small\nACGT\n")
    with pytest.raises(FastaFormatError, match=f"big.fa:{head_lines}: record 'empty' has no sequence"):
        Genome.open(p)


def _check_chunked(seq_by_name: dict[str, str], chunk: int, width: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = write(Path(d) / "c.fa", fasta_text(seq_by_name, width=width))
        g = Genome.open(p)
        assert g.backend == "pyfaidx"
        got = g.segments(chunk_size=chunk)
        for name, seq in seq_by_name.items():
            assert g.fetch(name, 0, len(seq)) == seq.upper()
        g.close()
    rows = [(n, s, e) for n, seq in seq_by_name.items() for s, e in acgt_segments(seq).tolist()]
    want = pd.DataFrame(rows, columns=["name", "start", "end"])
    assert list(got.itertuples(index=False, name=None)) == list(want.itertuples(index=False, name=None))


def test_chunked_segments_merge_runs_across_chunk_borders():
    # runs crossing borders at 10 and 20, a run ending exactly on a border, one starting on a border,
    # and a run spanning several whole chunks
    seq = "NNNNNACGTACGTACGTACGNNNNNNNNNNACGTACGTACGTACGTACGTACGTACGTNNA"
    for chunk in (1, 2, 3, 5, 7, 10, 20, 1000):
        _check_chunked({"a": seq, "b": "ACGT" * 11, "c": "N" * 13}, chunk, width=7)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.text(alphabet="ACGTNacgtnR", min_size=1, max_size=120), min_size=1, max_size=3),
    st.integers(1, 50),
    st.integers(1, 30),
)
def test_chunked_segments_equal_whole_string_segments(seqs, chunk, width):
    _check_chunked({f"r{i}": s for i, s in enumerate(seqs)}, chunk, width)


def test_segments_min_length_and_cache():
    g = Genome.from_sequences({"a": "ACGTNACNNACGTACGT", "b": "NNN"})
    assert g.segments().values.tolist() == [["a", 0, 4], ["a", 5, 7], ["a", 9, 17]]
    assert g.segments(min_length=5).values.tolist() == [["a", 9, 17]]
    chunked = Genome.from_sequences({"a": "ACGTNACNNACGTACGT", "b": "NNN"}).segments(chunk_size=3)
    pd.testing.assert_frame_equal(chunked, g.segments())
    df = g.segments()
    df.loc[0, "start"] = 99  # callers get a copy; the cache is unaffected
    assert g.segments().loc[0, "start"] == 0


# --------------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def genome_file(tmp_path_factory):
    recs = random_genome(11, lengths=(20_000, 9_000, 3_000), n_runs=15)
    p = write(tmp_path_factory.mktemp("win") / "w.fa", fasta_text(recs))
    return p, recs


def inside_one_segment(g: Genome, w: Window) -> bool:
    segs = g.segments()
    segs = segs[segs.name == w.name]
    return bool(((segs.start <= w.start) & (w.end <= segs.end)).any())


def test_sample_windows_properties(genome_file):
    p, recs = genome_file
    g = Genome.open(p)
    a = sample_windows(g, 300, 100, seed=42)
    b = sample_windows(Genome.open(p), 300, 100, seed=42)
    c = sample_windows(g, 300, 100, seed=43)
    assert a == b
    assert [(w.name, w.start) for w in a] != [(w.name, w.start) for w in c]
    for w in a:
        assert w.end - w.start == 100 == len(w.sequence) and w.strand == "+"
        assert set(w.sequence) <= set("ACGT")
        assert w.sequence == recs[w.name][w.start: w.end]
        assert inside_one_segment(g, w)
    minus = sample_windows(g, 300, 100, seed=42, reverse_complement=True)
    assert [(w.name, w.start, w.end) for w in minus] == [(w.name, w.start, w.end) for w in a]
    for wp, wm in zip(a, minus):
        assert wm.strand == "-" and wm.sequence == reverse_complement(wp.sequence)
        assert wm.sequence == g.fetch(wm.name, wm.start, wm.end, strand="-")
    mixed = sample_windows(g, 400, 100, seed=42, reverse_complement="random")
    strands = [w.strand for w in mixed]
    assert 120 < strands.count("-") < 280
    for w in mixed:
        fwd = g.fetch(w.name, w.start, w.end)
        assert w.sequence == (reverse_complement(fwd) if w.strand == "-" else fwd)
    assert mixed == sample_windows(g, 400, 100, seed=42, reverse_complement="random")
    only = sample_windows(g, 50, 20, seed=1, names=["chr3"])
    assert {w.name for w in only} == {"chr3"}


def test_sample_windows_backends_agree(genome_file):
    p, recs = genome_file
    assert sample_windows(Genome.open(p), 200, 64, seed=5) == sample_windows(Genome.from_sequences(recs), 200, 64,
                                                                              seed=5)


def test_sample_windows_is_uniform_over_valid_starts():
    # segments of 10 and 20 nt (separated by N): 6 + 16 = 22 valid starts for length 5
    g = Genome.from_sequences({"a": "ACGTACGTAC" + "NNN" + "GGGGCCCCAAAATTTTACGT", "b": "NNNNACG"})
    n = 22_000
    wins = sample_windows(g, n, 5, seed=123)
    starts = [w.start for w in wins]
    valid = list(range(0, 6)) + list(range(13, 29))
    assert set(starts) == set(valid)
    counts = np.array([starts.count(s) for s in valid])
    expected = n / len(valid)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 60  # df = 21: mean 21, sd ~6.5


def test_sample_windows_errors():
    g = Genome.from_sequences({"a": "ACGTNACGTACG", "b": "NNNN"})
    with pytest.raises(ParameterError, match="n=0"):
        sample_windows(g, 0, 3, seed=0)
    with pytest.raises(ParameterError, match="length=0"):
        sample_windows(g, 5, 0, seed=0)
    with pytest.raises(ParameterError, match="longest is a:5-12 \\(7 nt\\).*shorter window"):
        sample_windows(g, 5, 8, seed=0)
    with pytest.raises(ParameterError, match="no A/C/G/T"):
        sample_windows(g, 5, 2, seed=0, names=["b"])
    with pytest.raises(ParameterError, match="unknown record name 'z'"):
        sample_windows(g, 5, 2, seed=0, names=["z"])
    with pytest.raises(ParameterError, match="reverse_complement"):
        sample_windows(g, 5, 2, seed=0, reverse_complement="yes")
    with pytest.raises(ParameterError, match="seed"):
        sample_windows(g, 5, 2, seed=-1)
    assert len(sample_windows(g, 5, 7, seed=0)) == 5


def test_tile_windows(genome_file):
    p, recs = genome_file
    g = Genome.open(p)
    tiles = tile_windows(g, 500)
    assert tiles == tile_windows(g, 500)
    order = {n: i for i, n in enumerate(g.names)}
    keys = [(order[w.name], w.start) for w in tiles]
    assert keys == sorted(keys)
    for prev, w in zip(tiles, tiles[1:]):
        if prev.name == w.name:
            assert w.start >= prev.end
    for w in tiles:
        assert len(w.sequence) == 500 and set(w.sequence) <= set("ACGT") and inside_one_segment(g, w)
    # expected count: floor(segment length / 500) per segment
    segs = g.segments(min_length=500)
    assert len(tiles) == int(((segs.end - segs.start) // 500).sum())
    assert tile_windows(g, 500, max_windows=7) == tiles[:7]
    over = tile_windows(g, 500, stride=250, names=["chr2"])
    assert {w.name for w in over} == {"chr2"} and len(over) > len([w for w in tiles if w.name == "chr2"])
    small = Genome.from_sequences({"a": "ACGTACGTAC"})
    assert [(w.start, w.sequence) for w in tile_windows(small, 4, stride=3)] == [(0, "ACGT"), (3, "TACG"),
                                                                                 (6, "GTAC")]
    with pytest.raises(ParameterError, match="shorter window"):
        tile_windows(small, 11)
    with pytest.raises(ParameterError, match="stride"):
        tile_windows(small, 4, stride=0)


def test_window_locus_resolves_slice_names_to_chromosome_coordinates():
    from dnalm_utils.genome import Window

    assert Window("chr22:20000001-21000000", 0, 60, "+", "").locus == "chr22:20,000,001-20,000,060 (+)"
    assert Window("BA000025.2", 9, 19, "-", "").locus == "BA000025.2:10-19 (-)"


def test_regions_parse_and_cut_records(tmp_path):
    from dnalm_utils.genome import parse_region

    assert parse_region("chr1") == ("chr1", 0, None)
    assert parse_region(" chr22:1,001-2,000 ") == ("chr22", 1000, 2000)
    for bad in ("", "chr1:0-5", "chr1:9-5", "chr1 chr2"):
        with pytest.raises(ParameterError, match="region"):
            parse_region(bad)
    seq = "ACGT" * 50 + "NNNN" + "GGCC" * 50
    g = Genome.from_sequences({"chrA": seq, "chrB": "ACGT" * 10})
    r = g.region("chrA:11-50")
    assert r.names == ["chrA:11-50"] and r.fetch("chrA:11-50", 0, 40) == seq[10:50]
    w = sample_windows(r, 5, 10, seed=0)
    assert all(seq[int(x.locus.split(":")[1].split("-")[0].replace(",", "")) - 1 :].startswith(x.sequence) for x in w)
    assert g.region("chrB").fetch("chrB:1-40", 0, 40) == "ACGT" * 10
    with pytest.raises(ParameterError, match="outside record 'chrA'"):
        g.region("chrA:100-1000")
    with pytest.raises(ParameterError, match="unknown record name 'chrC'"):
        g.region("chrC:1-10")
    fa = tmp_path / "g.fa"
    fa.write_text(">chrA\n" + seq + "\n")
    from dnalm_utils import data

    assert data.evaluation_genome(fa, "chrA:201-204").fetch("chrA:201-204", 0, 4) == "NNNN"
    assert data.evaluation_genome(fa).names == ["chrA"]
    assert data.evaluation_genome().names == list(Genome.open(data.bundled_file("heldout")).names)


def test_validation_alphabets_are_the_codecs_letters():
    from dnalm_utils import codec, genome

    # the letters genome accepts are exactly those the codec gives a code to, any case
    accepted = {chr(b) for b in range(256) if codec.encode(bytes([b]))[0] != codec.INVALID}
    assert accepted == set(genome.IUPAC_CODES) | set(genome.IUPAC_CODES.lower())
    assert genome.acgt_segments("NNacgtRACGTN", 1).tolist() == [[2, 6], [7, 11]]
