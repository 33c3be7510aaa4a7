"""The one containment screen: its measure against brute force, both strands, the greedy record drop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnalm_utils import codec
from dnalm_utils import containment as C
from dnalm_utils.errors import ParameterError

COMP = str.maketrans("ACGTacgt", "TGCAtgca")


def rc(s: str) -> str:
    return s.translate(COMP)[::-1]


def brute_fraction(query: str, refs: list[str], k: int) -> float:
    ref = set()
    for r in refs:
        r = r.upper()
        for s in (r, rc(r)):
            ref |= {s[i:i + k] for i in range(len(s) - k + 1) if set(s[i:i + k]) <= set("ACGT")}
    q = query.upper()
    wins = [q[i:i + k] for i in range(len(q) - k + 1) if set(q[i:i + k]) <= set("ACGT")]
    return sum(w in ref for w in wins) / len(wins) if wins else math.nan


def random_seq(rng, n, p_n=0.0):
    p = [(1 - p_n) / 4] * 4 + [p_n]
    return "".join(rng.choice(list("ACGTN"), p=p, size=n))


@pytest.mark.parametrize("k", [5, 9, 32])
def test_shared_fraction_matches_brute_force_on_both_strands(k):
    rng = np.random.default_rng(k)
    ref = [random_seq(rng, 300, 0.02), random_seq(rng, 120)]
    queries = [ref[0][50:150].lower(), rc(ref[1][10:90]), random_seq(rng, 80, 0.05),
               ref[0][:60] + random_seq(rng, 60), "ACGTACGTACGT" * 6, "NNN"]
    got = C.shared_fraction(queries, ref, k)
    want = [brute_fraction(q, ref, k) for q in queries]
    np.testing.assert_allclose(got, want, equal_nan=True)
    np.testing.assert_allclose(C.shared_fraction(queries, C.kmer_index(ref, k), k), got, equal_nan=True)
    assert got[0] == 1.0 and got[1] == 1.0 and math.isnan(got[-1])


def test_repeats_inside_a_query_count_at_every_position():
    unit = "ACGGTCATTGCAGTCCATGAGATTACAGGCATTTACCGATGG"
    query = unit * 3 + "TTTTGGGGCCCCAAAATGCATGCA" * 2  # repeated unit in the reference, tail not
    frac = C.shared_fraction([query], [unit * 2], k=10)[0]
    assert frac == pytest.approx(brute_fraction(query, [unit * 2], 10))
    assert C.contained([query], [unit * 2], k=10).tolist() == [frac >= C.CONTAINED_FRACTION]


def test_contained_records_drops_the_inner_copy_and_keeps_the_container():
    rng = np.random.default_rng(0)
    big = random_seq(rng, 2000)
    other = random_seq(rng, 1500)
    seqs = {"big": big, "inner": rc(big[300:900]), "other": other, "half": big[:100] + random_seq(rng, 300)}
    assert C.contained_records(seqs) == ["inner"]  # "half" shares far less than half of its 32-mers
    assert C.contained_records({"a": big, "b": big}) == ["a"]  # of two copies one is kept
    assert C.contained_records({"a": big, "b": other}) == []
    assert C.contained_records({"a": big}) == []
    with pytest.raises(ParameterError, match="min_shared"):
        C.contained_records(seqs, min_shared=0)
    with pytest.raises(ParameterError, match="k-mer length"):
        C.shared_fraction([big], [big], k=33)


def test_best_matches_and_redundancy():
    a = "ACGT" * 20
    b = "TTGACCAGTAGGCATCGATCGGATCCAGTACGATCGTAGCTAGCTAGGA"
    best = C.best_matches({"q": b[:30], "none": "A" * 40}, {"x": a, "y": rc(b)}, k=8)
    assert best == {"q": {"reference": "y", "fraction": 1.0}, "none": {"reference": None, "fraction": 0.0}}
    red = C.redundancy(["x", "y", "z"], [b, b[5:35], "A" * 40], k=8)
    assert red["y"]["shared_with_others"] == 1.0 and red["y"]["most_shared_with"] == "x"
    assert red["z"]["shared_with_others"] == 0.0 and red["z"]["most_shared_with"] is None
    # distinct canonical k-mers (a k-mer and its reverse complement are one), each counted once
    def canon(s):
        return {min(s[i:i + 8], rc(s[i:i + 8])) for i in range(len(s) - 7)}

    assert red["x"]["shared_with_others"] == pytest.approx(len(canon(b) & canon(b[5:35])) / len(canon(b)), abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="ACGTN", min_size=0, max_size=80), st.integers(1, 32))
def test_kmer_index_is_the_canonical_kmer_set_whichever_strand(seq, k):
    expect = set()
    for i in range(len(seq) - k + 1):
        kmer = seq[i:i + k]
        if "N" not in kmer:
            expect.add(min(kmer, rc(kmer)))  # A<C<G<T: the string order is the 2-bit code order
    index = C.kmer_index([seq], k)
    assert codec.unpack_kmers(index, k) == sorted(expect)
    assert np.array_equal(index, C.kmer_index([rc(seq)], k))  # both strands give the same set


def test_contained_records_drops_near_twins_but_not_their_source():
    rng = np.random.default_rng(0)
    big = "".join(rng.choice(list("ACGT"), 5000))
    other = "".join(rng.choice(list("ACGT"), 3000))
    seqs = {"big": big, "inside": rc(big[1000:1800]), "other": other, "twin_a": other[:400] + "ACGT",
            "twin_b": other[:400] + "TTTT"}
    dropped = C.contained_records(seqs)
    assert set(dropped) == {"inside", "twin_a", "twin_b"}
