"""Bundled real human DNA (data/): checksums, the fixed split, counts, and the pure derivations."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dnalm_utils import containment
from dnalm_utils import data as D
from dnalm_utils.data_rebuild import main as data_cli
from dnalm_utils.errors import ParameterError
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
    assert data_cli(["verify", "--data-dir", str(copy)]) == 1


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
    assert data_cli(["verify"]) == 0
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
    # the data themselves, recomputed here with the one containment screen: no pre-training entry is contained
    # in the held-out slice, and the manifest's screen reports these same shares
    held_seqs, pre_seqs = [seq for _, _, seq in _fasta(DATA / D.FILES["heldout"])], [seq for _, _, seq in pretrain]
    screen = manifest["split"]["leakage_screen"]
    assert (screen["k"], screen["flag_fraction"]) == (containment.SCREEN_K, containment.CONTAINED_FRACTION)
    pre_in_held = containment.shared_fraction(pre_seqs, held_seqs)
    assert not containment.contained(pre_seqs, held_seqs).any()
    held_in_pre = float(containment.shared_fraction(held_seqs, pre_seqs)[0])
    assert held_in_pre < 0.1
    assert screen["heldout_kmers_found_in_pretrain"] == pytest.approx(held_in_pre, abs=1e-6)
    assert screen["max_pretrain_record_kmers_found_in_heldout"] == pytest.approx(float(np.nanmax(pre_in_held)), abs=1e-6)
    per = screen["per_pretrain_record_kmers_found_in_heldout"]
    assert [per[n] for n, _, _ in pretrain] == pytest.approx(pre_in_held.tolist(), abs=1e-6)


def test_manifest_redundancy_and_repeated_records_recomputed(manifest, pretrain):
    red = manifest["split"]["pretrain"]["redundancy"]
    assert red["k"] == containment.SCREEN_K
    assert containment.redundancy([n for n, _, _ in pretrain], [s for _, _, s in pretrain]) == red["per_record"]
    # the records split_corpus_records leaves out are the entries the manifest lists as over half shared
    dropped = containment.contained_records({n: s for n, _, s in pretrain})
    assert set(dropped) == set(red["entries_over_half_shared"])


def test_tf_peak_screen_recomputed(manifest, pretrain):
    table = D.load_tf_peaks()
    frac = containment.shared_fraction(list(table["sequence"]), [s for _, _, s in pretrain])
    # the table keeps 4 decimals; the flags use the full share
    assert np.abs(frac - table["pretrain_32mer_fraction"].to_numpy()).max() <= 5e-5
    flagged = table.loc[frac >= containment.CONTAINED_FRACTION, "name"].tolist()
    assert flagged == manifest["split"]["tf_peaks"]["flagged"]["in_pretrain_sequence"]


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
