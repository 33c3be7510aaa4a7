"""Re-deriving the bundled data: the pure derivations on small fixtures, the source checks, and the rebuild's
manifest against the shipped one."""

from __future__ import annotations

import pytest

from dnalm_utils import data as D
from dnalm_utils import data_rebuild as R
from dnalm_utils.errors import FastaFormatError, ParameterError

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
    res = R.derive_pretrain(path)
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
    res = R.derive_heldout(src)
    assert res.fasta.decode() == ">chr22:101-130\n" + seq + "\n"
    r = res.record
    assert (r["name"], r["chrom"], r["start"], r["end"]) == ("chr22:101-130", "chr22", 100, 130)
    assert r["n_count"] == 10 and r["n_fraction"] == pytest.approx(1 / 3, abs=1e-6)
    assert r["n_runs"] == [[10, 20]]
    bad = tmp_path / "bad.fa"
    bad.write_text(">22:101-131\n" + seq + "\n")
    with pytest.raises(FastaFormatError, match="31 bp"):
        R.derive_heldout(bad)


def test_derive_tf_peaks_on_fixture(tmp_path):
    s1 = "ACGTTGCAacgtTGCAAGGCCTTAAGGCCTTAAGGCCTTA"  # 40 bp
    s2 = "GGGGGGGGGGCCCCCCCCCCAAAAAAAAAATTTTTTTTTT"
    s3 = "ATATATATATCGCGCGCGCGATATATATATCGCGCGCGCG"
    oct4 = tmp_path / "oct4.fa"
    mafk = tmp_path / "mafk.fa"
    oct4.write_text(f">chr6:30000000-30000040\n{s1}\n>chr1:0-40\n{s2}\n")
    mafk.write_text(f">chr1:0-40\n{s3}\n>chr22:20999990-21000030\n{s1}\n")
    rc = s1.upper().translate(str.maketrans("ACGT", "TGCA"))[::-1]
    res = R.derive_tf_peaks(oct4, mafk, pretrain_seqs=["NNNN" + rc + "NNNN"], heldout_seqs=None)
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
        R.derive_tf_peaks(bad, mafk)


def test_locate_sources_rejects_changed_package(tmp_path):
    for key, src in D.SOURCES.items():
        p = tmp_path / "pkg" / src.path_in_package
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(">x\nACGT\n")
    with pytest.raises(R.SourceError, match="expected"):
        R.locate_sources(tmp_path)
    with pytest.raises(ParameterError, match="lacks"):
        R.locate_sources({"hum1_dat": tmp_path})


def test_region_flags_use_the_rebuild_regions():
    assert R.HELDOUT_REGION_HG19 == ("chr22", 20_000_000, 21_000_000)
    manifest = D.load_manifest()
    assert manifest["split"]["tf_peaks"]["mhc_region_hg19"] == list(R.MHC_REGION_HG19)
    assert manifest["split"]["tf_peaks"]["heldout_region_hg19"] == list(R.HELDOUT_REGION_HG19)


def test_cli_usage_error_and_help(capsys):
    with pytest.raises(SystemExit):
        R.main(["frobnicate"])
    assert "verify" in capsys.readouterr().err
