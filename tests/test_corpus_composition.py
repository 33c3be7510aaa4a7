"""What the corpus is made of: record table, locus rule, summary numbers, the glue sentence, windows per locus."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dnalm_utils import corpus, corpus_composition as cc
from dnalm_utils.errors import ParameterError


def _write(path, records):
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in records))
    return path


@pytest.fixture
def tiny(tmp_path):
    """A corpus with a named MHC record, a copy of part of it, an unrelated record; and a held-out file."""
    rng = np.random.default_rng(0)
    mhc = "".join(rng.choice(list("ACGT"), 3000))
    far = "".join(rng.choice(list("ACGT"), 1000))
    path = _write(tmp_path / "c.fa", [("mhc1 Homo sapiens chromosome 6p21.3, HLA Class I region", mhc),
                                      ("copy1 TNF and LTA genes", mhc[500:1500]),
                                      ("far1 some other gene", far),
                                      ("gc1 known", "GGCCATNNAT")])
    heldout = _write(tmp_path / "h.fa", [("h1", "GGGCAT"), ("h2", "CCNN")])
    return path, heldout, mhc, far


def test_record_table_on_a_tiny_corpus_applies_the_locus_rule_and_counts_gc(tiny):
    path, *_ = tiny
    t = cc.record_table(path).set_index("record")
    assert t.loc["mhc1", "locus"] == cc.HLA_LOCUS  # named by its description
    assert t.loc["copy1", "locus"] == cc.HLA_LOCUS  # its 32-mers all lie in mhc1
    assert "100.0 %" in t.loc["copy1", "locus_evidence"]
    assert t.loc["far1", "locus"] == cc.OTHER and t.loc["gc1", "locus"] == cc.OTHER
    # GGCCATNNAT: 8 A/C/G/T bases, 4 of them G or C
    assert t.loc["gc1", "acgt_nt"] == 8 and t.loc["gc1", "gc_fraction"] == pytest.approx(0.5)
    assert t.loc["gc1", "length_nt"] == 10


def test_summary_of_a_tiny_corpus(tiny):
    path, heldout, mhc, far = tiny
    s = cc.composition_summary(path, heldout, nucleotides_seen=12_030)
    total = 3000 + 1000 + 1000 + 10
    assert s["total_nt"] == total and s["n_records"] == 4
    assert s["locus_nt"] == 4000 and s["locus_share"] == pytest.approx(4000 / total)
    assert s["locus_records"] == ["mhc1", "copy1"]
    gc = sum(seq.count("G") + seq.count("C") for seq in (mhc, mhc[500:1500], far)) + 4
    assert s["corpus_gc"] == pytest.approx(gc / (total - 2))
    assert s["heldout_gc"] == pytest.approx(6 / 8)  # GGGCAT + CC: 6 of 8 bases are G or C
    assert s["heldout_records"] == ["h1", "h2"]
    assert s["passes"] == pytest.approx(12_030 / total)
    assert cc.composition_summary(path, heldout)["passes"] is None
    with pytest.raises(ParameterError, match="nucleotides_seen"):
        cc.composition_summary(path, heldout, nucleotides_seen=-1)


def test_a_corpus_without_a_named_locus_names_its_largest_record(tmp_path, tiny):
    _, heldout, _, far = tiny
    path = _write(tmp_path / "plain.fa", [("a", far), ("b", far[::-1][:200])])
    s = cc.composition_summary(path, heldout)
    assert s["locus"] is None and s["locus_share"] == 0 and s["largest_record"] == "a"
    text = cc.composition_text(s)
    assert "`a`" in text and f"{100 * 1000 / 1200:.1f} %" in text and "locus-heavy" not in text


def test_bundled_corpus_shares_and_the_locus(tmp_path):
    t = cc.record_table()
    assert t.corpus_share.sum() == pytest.approx(1.0)
    records = {r.name: r for r in corpus.corpus_records()}
    assert set(t.record) == set(records)
    total = sum(len(r.sequence) for r in records.values())
    s = cc.composition_summary()
    locus = set(s["locus_records"])
    assert "BA000025.2" in locus
    assert s["locus_share"] == pytest.approx(sum(len(records[n].sequence) for n in locus) / total)
    assert s["largest_record"] == "BA000025.2"
    assert s["largest_record_share"] == pytest.approx(len(records["BA000025.2"].sequence) / total)
    # every other record is neither named as the MHC nor a copy of it
    for name in set(records) - locus:
        assert not cc.LOCUS_DESCRIPTION.search(records[name].description)
    # the corpus and the held-out slice differ in GC, as the pages say
    assert s["heldout_gc"] - s["corpus_gc"] > 0.03


def test_composition_text_is_formatted_from_the_numbers(tiny):
    path, heldout, *_ = tiny
    s = cc.composition_summary(path, heldout, nucleotides_seen=20_000)
    text = cc.composition_text(s)
    assert f"{100 * s['locus_share']:.1f} %" in text and f"{s['passes']:.1f} times" in text
    assert "75.0 %" in text and f"{100 * s['corpus_gc']:.1f} %" in text  # held-out and corpus GC
    assert "`mhc1` and `copy1`" in text and cc.HLA_LOCUS in text
    changed = cc.composition_text({**s, "locus_share": 0.123, "heldout_gc": s["corpus_gc"] - 0.02})
    assert "12.3 %" in changed and "2.0 points less GC" in changed
    with pytest.raises(ParameterError, match="missing keys"):
        cc.composition_text({"total_nt": 1})


def test_windows_per_locus_counts_a_task_table(tiny):
    path, *_ = tiny
    table = pd.DataFrame({"name": ["mhc1", "mhc1", "far1", "copy1", "far1", "far1"],
                          "split": ["test", "test", "test", "train", "train", "train"],
                          "label": ["exon"] * 6})
    per = cc.windows_per_locus(table, path).set_index(["split", "locus"])
    assert per.loc[("test", cc.HLA_LOCUS), "windows"] == 2 and per.loc[("test", cc.OTHER), "windows"] == 1
    assert per.loc[("train", cc.HLA_LOCUS), "share"] == pytest.approx(1 / 3)
    assert cc.windows_in_locus(table[table.split == "test"], path) == 2
    assert cc.windows_in_locus(["far1", "copy1", "mhc1"], path) == 2
    with pytest.raises(ParameterError, match="not in the corpus"):
        cc.windows_in_locus(["chr9"], path)
    with pytest.raises(ParameterError, match="sequences_in_locus"):
        cc.windows_in_locus([1, 2], path)


def test_sequences_in_locus_uses_the_containment_screen(tiny):
    path, _, mhc, far = tiny
    found = cc.sequences_in_locus([mhc[2000:2080], far[100:180], "ACGT"], path)
    assert found.tolist() == [True, False, False]
