"""Bundled real human DNA (data/): checksums, the fixed split, counts, and the pure derivations."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dnalm_utils import data as D
from dnalm_utils.errors import FastaFormatError, ParameterError
from dnalm_utils.io import sha256_bytes, sha256_file

DATA = D.DATA_DIR


def _fasta(path: Path) -> list[tuple[str, str, str]]:
    return D.read_fasta_text(gzip.decompress(path.read_bytes()).decode("ascii"), source=str(path))


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((DATA / "MANIFEST.json").read_text())


@pytest.fixture(scope="module")
def pretrain() -> list[tuple[str, str, str]]:
    return _fasta(DATA / D.FILES["pretrain"])


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch):
    monkeypatch.delenv(D.ENV_VAR, raising=False)


# ---------------------------------------------------------------------------------- shipped files


def test_shipped_files_match_manifest_checksums(manifest):
    assert set(manifest["files"]) == set(D.FILES.values())
    for name, entry in manifest["files"].items():
        raw = (DATA / name).read_bytes()
        assert sha256_bytes(raw) == entry["sha256"], name
        assert len(raw) == entry["bytes"], name
        content = gzip.decompress(raw) if name.endswith(".gz") else raw
        assert sha256_bytes(content) == entry["sha256_uncompressed"], name
        assert len(content) == entry["bytes_uncompressed"], name
    assert D.verify() == []
    D.verify_or_raise()


def test_manifest_lists_every_data_file(manifest):
    present = {
        p.name for p in DATA.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name not in {"README.md", "MANIFEST.json"}
    }
    assert present == set(manifest["files"])
    assert (DATA / "README.md").is_file()


def test_gz_files_are_deterministic_gzip():
    for name in D.FILES.values():
        if name.endswith(".gz"):
            head = (DATA / name).read_bytes()[:10]
            assert head[:2] == b"\x1f\x8b" and head[4:8] == b"\0\0\0\0", f"{name}: mtime not 0"


def test_manifest_sources_record_packages(manifest):
    for key, src in D.SOURCES.items():
        m = manifest["sources"][key]
        assert m["sha256"] == src.sha256 and m["version"] == src.version
    assert manifest["sources"]["hum1_dat"]["package"] == "emboss-test"
    assert manifest["sources"]["chr22_fa"]["package"] == "hisat2"
    assert manifest["sources"]["oct4_fa"]["package"] == "janggu"
    roles = {name: e["role"] for name, e in manifest["files"].items()}
    assert roles[D.FILES["pretrain"]] == "pretrain"
    assert roles[D.FILES["heldout"]] == "heldout"
    assert roles[D.FILES["tf_peaks"]] == "finetune"


@pytest.mark.parametrize("via_env", [False, True])
def test_corrupted_copy_is_detected_and_named(tmp_path, monkeypatch, via_env):
    copy = tmp_path / "data"
    shutil.copytree(DATA, copy)
    target = copy / D.FILES["heldout"]
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    target.write_bytes(bytes(raw))
    if via_env:
        monkeypatch.setenv(D.ENV_VAR, str(copy))
        problems = D.verify()
        assert D.get_data_dir() == copy
    else:
        problems = D.verify(copy)
    assert len(problems) == 1
    assert D.FILES["heldout"] in problems[0] and "dnalm-book data rebuild" in problems[0]
    with pytest.raises(D.DataIntegrityError, match="heldout_chr22"):
        D.verify_or_raise(copy)
    assert D.main(["verify", "--data-dir", str(copy)]) == 1


def test_missing_file_and_manifest_are_named(tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(DATA, copy)
    (copy / D.FILES["tf_peaks_table"]).unlink()
    problems = D.verify(copy)
    assert len(problems) == 1 and D.FILES["tf_peaks_table"] in problems[0]
    assert "rebuild" in problems[0]
    with pytest.raises(D.DataIntegrityError, match="missing"):
        D.bundled_file("tf_peaks_table", copy)
    (copy / "MANIFEST.json").unlink()
    problems = D.verify(copy)
    assert len(problems) == 1 and "MANIFEST.json" in problems[0] and "rebuild" in problems[0]


def test_verify_cli_ok(capsys):
    assert D.main(["verify"]) == 0
    assert "OK" in capsys.readouterr().out


def test_bundled_file_names():
    for role, name in D.FILES.items():
        assert D.bundled_file(role) == DATA / name
        assert D.bundled_file(name) == DATA / name
    with pytest.raises(ParameterError) as err:
        D.bundled_file("pretraining")
    msg = str(err.value)
    for role in ("pretrain", "pretrain_features", "heldout", "tf_peaks", "tf_peaks_table"):
        assert repr(role) in msg


def test_data_dir_default_and_override(tmp_path, monkeypatch):
    assert D.get_data_dir() == Path(D.__file__).resolve().parent.parent / "data"
    monkeypatch.setenv(D.ENV_VAR, str(tmp_path))
    assert D.get_data_dir() == tmp_path
    assert D.get_data_dir("/x") == Path("/x")


# ---------------------------------------------------------------------------------- the split


def test_split_pretrain_never_on_chr22(manifest, pretrain):
    per_record = manifest["split"]["pretrain"]["per_record_chromosome"]
    assert set(per_record) == {n for n, _, _ in pretrain}
    assert all(c is not None and c != "22" for c in per_record.values())
    assert manifest["split"]["pretrain"]["on_heldout_chromosome"] == []
    stated = set(manifest["split"]["pretrain"]["chromosomes_stated_in_entries"])
    assert {"1", "5", "6", "11", "14", "16", "18", "19"} <= stated and "22" not in stated
    for _, desc, _ in pretrain:
        assert "chromosome 22" not in desc.lower()
    # the data themselves, recomputed here: no pre-training entry is a copy of held-out sequence (shared
    # canonical 31-mers, both strands), and the manifest's screen reports these same shares
    from dnalm_utils.ngram import canonical_kmer_codes

    heldout = np.unique(np.concatenate([canonical_kmer_codes(seq, 31) for _, _, seq in _fasta(DATA / D.FILES["heldout"])]))
    per_record = [canonical_kmer_codes(seq, 31) for _, _, seq in pretrain]
    worst = max(np.isin(codes, heldout).mean() for codes in per_record if codes.size)
    shared = np.isin(heldout, np.unique(np.concatenate(per_record))).mean()
    assert worst < 0.5 and shared < 0.1
    held_seqs, pre_seqs = [seq for _, _, seq in _fasta(DATA / D.FILES["heldout"])], [seq for _, _, seq in pretrain]
    screen = manifest["split"]["leakage_screen"]  # the manifest's screen (32-mers with multiplicity), recomputed
    assert screen["heldout_kmers_found_in_pretrain"] == pytest.approx(
        float(D.kmer_overlap(held_seqs, pre_seqs, screen["k"])[0]), abs=1e-6)
    assert screen["max_pretrain_record_kmers_found_in_heldout"] == pytest.approx(
        float(np.nanmax(D.kmer_overlap(pre_seqs, held_seqs, screen["k"]))), abs=1e-6)


def test_split_heldout_is_chr22(manifest):
    recs = _fasta(DATA / D.FILES["heldout"])
    assert [r[0] for r in recs] == ["chr22:20000001-21000000"]
    split = manifest["split"]["heldout"]
    assert (split["chrom"], split["start"], split["end"]) == ("chr22", 20_000_000, 21_000_000)
    assert split["assembly"] == "GRCh37/hg19"


# ---------------------------------------------------------------------------------- counts


def test_pretrain_counts(manifest, pretrain):
    assert len(pretrain) == 21
    assert sum(len(s) for _, _, s in pretrain) == 2_692_915
    names = [n for n, _, _ in pretrain]
    assert len(set(names)) == 21 and "BA000025.2" in names
    hla = next(r for r in pretrain if r[0] == "BA000025.2")
    assert hla[1] == "Homo sapiens genomic DNA, chromosome 6p21.3, HLA Class I region."
    assert len(hla[2]) == 2_229_817
    assert all(s == s.upper() for _, _, s in pretrain)
    entry = manifest["files"][D.FILES["pretrain"]]
    assert (entry["records"], entry["bp"]) == (21, 2_692_915)
    text = gzip.decompress((DATA / D.FILES["pretrain"]).read_bytes()).decode()
    assert max(len(line) for line in text.splitlines() if not line.startswith(">")) == 60


def test_heldout_counts():
    (name, _, seq), = _fasta(DATA / D.FILES["heldout"])
    assert len(seq) == 1_000_000
    assert seq.count("N") == 100_000
    assert set(seq) <= set("ACGTN")


def test_tf_peak_counts_and_table(manifest):
    recs = _fasta(DATA / D.FILES["tf_peaks"])
    labels = [d for _, d, _ in recs]
    assert labels.count("label=Oct4") == 3897 and labels.count("label=Mafk") == 3900
    assert all(len(s) == 200 for _, _, s in recs)
    assert len({n for n, _, _ in recs}) == len(recs) == 7797
    assert recs[0][0] == "chr1:15710957-15711157" and recs[0][1] == "label=Oct4"
    assert any(any(c.islower() for c in s) for _, _, s in recs), "soft-masking was lost"
    table = D.load_tf_peaks()
    assert len(table) == 7797 and list(table["name"]) == [n for n, _, _ in recs]
    assert ((table["end"] - table["start"]) == 200).all()
    assert (table["sequence"].str.len() == 200).all()
    row = table.iloc[0]
    seq = row["sequence"].upper()
    acgt = sum(seq.count(c) for c in "ACGT")
    assert row["gc"] == pytest.approx((seq.count("G") + seq.count("C")) / acgt, abs=1e-4)
    flagged = manifest["split"]["tf_peaks"]["flagged"]
    assert flagged["heldout_region"] == table.loc[table["in_heldout_region"] == 1, "name"].tolist()
    assert flagged["mhc_region"] == table.loc[table["in_mhc_region"] == 1, "name"].tolist()
    assert all(n.startswith("chr6:") for n in flagged["mhc_region"])
    assert manifest["split"]["tf_peaks"]["counts"] == {"Oct4": 3897, "Mafk": 3900}


def test_features_within_records(pretrain):
    lengths = {n: len(s) for n, _, s in pretrain}
    feat = D.load_features()
    assert list(feat.columns) == D.FEATURE_COLUMNS
    assert (feat["start"] < feat["end"]).all() and (feat["start"] >= 0).all()
    local = feat[feat["seqid"].isin(lengths)]
    assert (local["end"] <= local["seqid"].map(lengths)).all()
    # rows on a sequence outside the corpus are exactly parts of features that refer to other entries
    remote = feat[~feat["seqid"].isin(lengths)]
    assert (remote["seqid"] != remote["annotated_on"]).all()
    assert set(feat["annotated_on"]) == set(lengths)
    types = set(feat["type"])
    assert {"source", "exon", "CDS", "gene", "mRNA", "repeat_region", "misc_feature"} <= types
    # compound features: part i/n numbering is complete within each feature_id
    n_parts = feat["part"].str.split("/").str[1].astype(int)
    sizes = feat.groupby("feature_id")["part"].transform("size")
    assert (n_parts == sizes).all()
    assert (feat["type"] == "source").sum() == 21


# ---------------------------------------------------------------------------------- derivations

EMBL_FIXTURE = """\
ID   TEST0001; SV 1; linear; genomic DNA; STD; HUM; 60 BP.
XX
AC   TEST0001;
XX
DE   Test entry one.
XX
FH   Key             Location/Qualifiers
FH
FT   source          1..60
FT                   /organism="Homo sapiens"
FT                   /chromosome="7"
FT                   /mol_type="genomic DNA"
FT   gene            5..50
FT                   /gene="TST1"
FT   exon            join(5..10,21..30)
FT                   /gene="TST1"
FT                   /number=1
FT   CDS             complement(join(31..35,41..50))
FT                   /gene="TST1"
FT                   /product="test protein"
FT   repeat_region   <52..60
FT                   /rpt_family="Alu"
XX
SQ   Sequence 60 BP; 14 A; 14 C; 14 G; 14 T; 4 other;
     acgtacgtac gtacgtacgt nnnnacgtac gtacgtacgt acgtacgtac gtacgtacgt        60
//
ID   TEST0002; SV 2; linear; mRNA; STD; HUM; 12 BP.
XX
AC   TEST0002;
XX
DE   Test entry two,
DE   an mRNA.
XX
FH   Key             Location/Qualifiers
FH
FT   source          1..12
FT                   /organism="Homo sapiens"
FT                   /map="11p15.5"
FT                   /mol_type="mRNA"
FT   misc_feature    3..4
FT                   /note="two
FT                   lines"
XX
SQ   Sequence 12 BP; 3 A; 3 C; 3 G; 3 T; 0 other;
     ggggccccaa tt                                                      12
//
"""


def test_derive_pretrain_on_fixture(tmp_path):
    path = tmp_path / "tiny.dat"
    path.write_text(EMBL_FIXTURE)
    res = D.derive_pretrain(path)
    seq1 = "ACGTACGTACGTACGTACGTNNNNACGTACGTACGTACGTACGTACGTACGTACGTACGT"
    assert res.fasta.decode() == (
        ">TEST0001.1 Test entry one.\n" + seq1 + "\n"
        ">TEST0002.2 Test entry two, an mRNA.\nGGGGCCCCAATT\n"
    )
    rows = [r.split("\t") for r in res.features_tsv.decode().splitlines()]
    assert rows[0] == D.FEATURE_COLUMNS
    got = [tuple(r[:5]) + (r[9], r[10], r[12]) for r in rows[1:]]
    assert got == [
        ("TEST0001.1", "0", "60", "source", "+", "1/1", "TEST0001.1:f0", ""),
        ("TEST0001.1", "4", "50", "gene", "+", "1/1", "TEST0001.1:f1", ""),
        ("TEST0001.1", "4", "10", "exon", "+", "1/2", "TEST0001.1:f2", ""),
        ("TEST0001.1", "20", "30", "exon", "+", "2/2", "TEST0001.1:f2", ""),
        ("TEST0001.1", "40", "50", "CDS", "-", "1/2", "TEST0001.1:f3", ""),
        ("TEST0001.1", "30", "35", "CDS", "-", "2/2", "TEST0001.1:f3", ""),
        ("TEST0001.1", "51", "60", "repeat_region", "+", "1/1", "TEST0001.1:f4", "<"),
        ("TEST0002.2", "0", "12", "source", "+", "1/1", "TEST0002.2:f0", ""),
        ("TEST0002.2", "2", "4", "misc_feature", "+", "1/1", "TEST0002.2:f1", ""),
    ]
    table = res.features
    assert table.loc[2, "gene"] == "TST1" and table.loc[2, "number"] == "1"
    assert table.loc[4, "product"] == "test protein"
    assert table.loc[6, "rpt_family"] == "Alu"
    assert table.loc[8, "note"] == "two lines"
    info = {r["id"]: r for r in res.records}
    assert info["TEST0001.1"]["chromosome"] == "7"
    assert info["TEST0001.1"]["chromosome_basis"].startswith("source /chromosome")
    assert info["TEST0002.2"]["chromosome"] == "11" and info["TEST0002.2"]["map"] == "11p15.5"
    assert info["TEST0001.1"]["n_count"] == 4 and info["TEST0001.1"]["bp"] == 60
    assert info["TEST0001.1"]["gc"] == 0.5
    assert info["TEST0002.2"]["molecule_type"] == "mRNA"


def test_derive_heldout_on_fixture(tmp_path):
    src = tmp_path / "slice.fa"
    seq = "ACGTACGTAC" + "NNNNNNNNNN" + "GGGCCCAAAT"
    src.write_text(">22:101-130\n" + seq[:12] + "\n" + seq[12:] + "\n")
    res = D.derive_heldout(src)
    assert res.fasta.decode() == ">chr22:101-130\n" + seq + "\n"
    r = res.record
    assert (r["name"], r["chrom"], r["start"], r["end"]) == ("chr22:101-130", "chr22", 100, 130)
    assert r["n_count"] == 10 and r["n_fraction"] == pytest.approx(1 / 3, abs=1e-6)
    assert r["n_runs"] == [[10, 20]]
    bad = tmp_path / "bad.fa"
    bad.write_text(">22:101-131\n" + seq + "\n")
    with pytest.raises(FastaFormatError, match="31 bp"):
        D.derive_heldout(bad)


def test_derive_tf_peaks_on_fixture(tmp_path):
    s1 = "ACGTTGCAacgtTGCAAGGCCTTAAGGCCTTAAGGCCTTA"  # 40 bp
    s2 = "GGGGGGGGGGCCCCCCCCCCAAAAAAAAAATTTTTTTTTT"
    s3 = "ATATATATATCGCGCGCGCGATATATATATCGCGCGCGCG"
    oct4 = tmp_path / "oct4.fa"
    mafk = tmp_path / "mafk.fa"
    oct4.write_text(f">chr6:30000000-30000040\n{s1}\n>chr1:0-40\n{s2}\n")
    mafk.write_text(f">chr1:0-40\n{s3}\n>chr22:20999990-21000030\n{s1}\n")
    rc = s1.upper().translate(str.maketrans("ACGT", "TGCA"))[::-1]
    res = D.derive_tf_peaks(oct4, mafk, pretrain_seqs=["NNNN" + rc + "NNNN"], heldout_seqs=None)
    assert res.fasta.decode() == (
        f">chr6:30000000-30000040 label=Oct4\n{s1}\n>chr1:0-40 label=Oct4\n{s2}\n"
        f">chr1:0-40_dup2 label=Mafk\n{s3}\n>chr22:20999990-21000030 label=Mafk\n{s1}\n"
    )
    assert res.renamed == [{"original": "chr1:0-40", "name": "chr1:0-40_dup2", "label": "Mafk"}]
    assert res.counts == {"Oct4": 2, "Mafk": 2}
    t = res.table
    assert list(t["in_mhc_region"]) == [1, 0, 0, 0]
    assert list(t["in_heldout_region"]) == [0, 0, 0, 1]
    assert list(t["pretrain_32mer_fraction"]) == [1.0, 0.0, 0.0, 1.0]
    assert t["heldout_32mer_fraction"].isna().all()
    assert t.loc[1, "gc"] == 0.5 and t.loc[0, "softmasked_fraction"] == pytest.approx(0.1)
    lines = res.table_tsv.decode().splitlines()
    assert lines[0].split("\t")[:6] == ["name", "chrom", "start", "end", "label", "gc"]
    assert lines[1].split("\t")[:6] == ["chr6:30000000-30000040", "chr6", "30000000", "30000040",
                                        "Oct4", "0.5000"]
    bad = tmp_path / "bad.fa"
    bad.write_text(f">chr1:0-41\n{s2}\n")
    with pytest.raises(FastaFormatError, match="41 bp"):
        D.derive_tf_peaks(bad, mafk)


def test_kmer_overlap_and_redundancy():
    a = "ACGT" * 20
    b = "TTGACCAGTAGGCATCGATCGGATCCAGTACGATCGTAGCTAGCTAGGA"
    assert D.kmer_overlap([b, a[:10]], [b], k=8)[0] == 1.0
    assert D.kmer_overlap([b], ["A" * 50], k=8)[0] == 0.0
    import math
    assert math.isnan(D.kmer_overlap([b, "NNNN"], [b], k=8)[1])
    with pytest.raises(ParameterError):
        D.kmer_overlap([b], [b], k=33)
    red = D.redundancy(["x", "y", "z"], [b, b[5:35], "A" * 40], k=8)
    assert red["y"]["shared_with_others"] == 1.0 and red["y"]["most_shared_with"] == "x"
    assert red["z"]["shared_with_others"] == 0.0 and red["z"]["most_shared_with"] is None


def test_locate_sources_rejects_changed_package(tmp_path):
    for key, src in D.SOURCES.items():
        p = tmp_path / "pkg" / src.path_in_package
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(">x\nACGT\n")
    with pytest.raises(D.SourceError, match="expected"):
        D.locate_sources(tmp_path)
    with pytest.raises(ParameterError, match="lacks"):
        D.locate_sources({"hum1_dat": tmp_path})


def test_shipped_pretrain_sequences_match_manifest(manifest, pretrain):
    per = {r["id"]: r for r in manifest["files"][D.FILES["pretrain"]]["per_record"]}
    for name, _, seq in pretrain:
        assert sha256_bytes(seq.encode()) == per[name]["sha256_sequence"]
        assert len(seq) == per[name]["bp"]
    assert sha256_file(DATA / D.FILES["pretrain"]) == manifest["files"][D.FILES["pretrain"]]["sha256"]


def test_evaluation_windows_are_seeded_acgt_windows_of_the_region():
    from dnalm_utils import data as D

    w1, where = D.evaluation_windows(20, 50, seed=3)
    w2, _ = D.evaluation_windows(20, 50, seed=3)
    assert w1 == w2 and where == "chr22:20000001-21000000"
    assert all(len(w) == 50 and set(w) <= set("ACGT") for w in w1)
    w3, where3 = D.evaluation_windows(5, 50, seed=3, region="chr22:20000001-21000000:400001-401000")
    heldout = D.load_sequences("heldout")["chr22:20000001-21000000"].upper()[400000:401000]
    assert where3 == "chr22:20000001-21000000:400001-401000" and all(w in heldout for w in w3)
