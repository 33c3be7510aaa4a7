"""The pre-training corpus accessors: records, checksum, ACGT pieces, and the records safe to split."""

from __future__ import annotations

import shutil

import numpy as np

from dnalm_utils import containment, corpus, data
from dnalm_utils.io import sha256_file


def test_corpus_pieces_are_acgt_only_and_cover_the_corpus():
    pieces = corpus.corpus_pieces()
    assert all(set(p) <= set("ACGTacgt") and len(p) >= 8 for p in pieces)
    total = sum(len(r.sequence) for r in corpus.corpus_records())
    assert 0.95 * total < sum(map(len, pieces)) <= total


def test_acgt_pieces_split_at_n_and_drop_short_runs():
    assert corpus.acgt_pieces(["ACGTACGTAANNACGNACGTACGTACGT", "NNNN"], min_length=8) == ["ACGTACGTAA", "ACGTACGTACGT"]


def test_split_corpus_drops_the_records_contained_in_another():
    kept = corpus.split_corpus_records()
    names = {r.name for r in kept}
    every = {r.name for r in corpus.corpus_records()}
    # inside BA000025.2 (MHC), U01317.1 (beta-globin locus) and the FAU entries X65921.1 / X65923.1
    assert every - names == {"AF129756.1", "V00508.1", "X65923.1", "AY411291.1"}
    assert set(corpus.repeated_corpus_records()) == every - names
    seqs = {r.name: r.sequence for r in kept}
    assert containment.contained_records(seqs) == []  # nothing left that is contained in another record
    # each dropped record is contained in the records kept, by the screen's one measure and threshold
    dropped = [r.sequence for r in corpus.corpus_records() if r.name not in names]
    assert (containment.shared_fraction(dropped, list(seqs.values())) >= containment.CONTAINED_FRACTION).all()


def test_fingerprint_follows_the_file_and_the_screen_follows_an_edited_copy(tmp_path):
    path = data.bundled_file("pretrain")
    assert corpus.corpus_fingerprint() == sha256_file(path)
    copy = tmp_path / "corpus.fa"
    seq = "".join(np.random.default_rng(0).choice(list("ACGT"), 400))
    copy.write_text(f">big\n{seq}\n>inside\n{seq[100:300]}\n>other\n{seq[::-1]}\n")
    assert corpus.corpus_fingerprint(copy) == sha256_file(copy)
    assert corpus.repeated_corpus_records(copy) == ["inside"]
    copy.write_text(f">big\n{seq}\n>other\n{seq[::-1]}\n")  # edited: the cache is keyed by content
    assert corpus.repeated_corpus_records(copy) == []
    assert [r.name for r in corpus.split_corpus_records(copy)] == ["big", "other"]
    shutil.rmtree(tmp_path)
