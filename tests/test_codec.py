"""The one nucleotide codec and k-mer packer: round trips and brute-force references."""

import itertools

import numpy as np
import pytest

from dnalm_utils import codec
from dnalm_utils.errors import ParameterError


def test_encode_codes_every_byte_class():
    c = codec.encode("ACGTacgtNnRyX-")
    assert c.tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 5, 5, 255, 255]
    assert codec.decode(codec.encode("ACGTN")) == "ACGTN"
    with pytest.raises(ParameterError):
        codec.decode(codec.encode("R"))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_kmer_codes_match_brute_force(k):
    rng = np.random.default_rng(k)
    seq = "".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04], size=200))
    values, valid = codec.kmer_codes(seq, k)
    assert values.shape == valid.shape == (len(seq) - k + 1,)
    for i in range(len(seq) - k + 1):
        window = seq[i:i + k]
        assert valid[i] == ("N" not in window)
        if valid[i]:
            assert int(values[i]) == int("".join(str("ACGT".index(c)) for c in window), 4)
            assert codec.unpack_kmers(values[i:i + 1], k) == [window]
    assert codec.kmer_codes("AC", 3)[0].size == 0


def test_pack_unpack_round_trip_up_to_32():
    rng = np.random.default_rng(0)
    kmers = ["".join(rng.choice(list("ACGT"), size=32)) for _ in range(50)]
    assert codec.unpack_kmers(codec.pack_kmers(kmers), 32) == kmers
    assert codec.pack_kmers("TTT")[0] == 63
    with pytest.raises(ParameterError):
        codec.pack_kmers(["ACGN"])
    with pytest.raises(ParameterError):
        codec.kmer_codes("ACGT", 33)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_dnabert_order_is_itertools_product_atcg(k):
    dnabert = ["".join(p) for p in itertools.product("ATCG", repeat=k)]
    packed = codec.pack_kmers(dnabert)
    assert codec.to_dnabert_index(packed, k).tolist() == list(range(4 ** k))
    assert codec.from_dnabert_index(np.arange(4 ** k), k).tolist() == packed.tolist()


def test_letter_index_and_reverse_complement():
    assert codec.letter_index("GATTACA", [0, 1, 2]).tolist() == [2, 0, 3]
    with pytest.raises(ParameterError, match="'N'"):
        codec.letter_index("GANTACA", [2], where="window 3")
    assert codec.decode(codec.reverse_complement_codes(codec.encode("AACGT"))) == "ACGTT"


@pytest.mark.parametrize("k", [1, 4, 7])
def test_canonical_kmer_codes_match_brute_force(k):
    rng = np.random.default_rng(10 + k)
    seq = "".join(rng.choice(list("ACGTNacgtR"), p=[0.2] * 4 + [0.04] + [0.03] * 4 + [0.04], size=150))
    values, valid = codec.canonical_kmer_codes(seq, k)
    comp = str.maketrans("ACGT", "TGCA")
    for i in range(len(seq) - k + 1):
        window = seq[i:i + k].upper()
        assert valid[i] == (set(window) <= set("ACGT"))
        if valid[i]:
            rc = window.translate(comp)[::-1]
            assert int(values[i]) == min(int(codec.pack_kmers(window)[0]), int(codec.pack_kmers(rc)[0]))


def test_pack_codes_is_the_inverse_of_unpack_codes():
    rng = np.random.default_rng(1)
    for k in (1, 13, 32):
        digits = rng.integers(0, 4, size=(40, k)).astype(np.uint8)
        packed = codec.pack_codes(digits)
        assert codec.unpack_codes(packed, k).tolist() == digits.tolist()
        brute = [int("".join(str(d) for d in row), 4) for row in digits]
        assert packed.tolist() == brute
    with pytest.raises(ParameterError, match="shape"):
        codec.pack_codes(np.zeros(5, np.uint8))


def test_kmer_codes_of_an_acgt_only_sequence_are_all_valid():
    values, valid = codec.kmer_codes("ACGTTGCA", 4)
    assert valid.all() and codec.unpack_kmers(values, 4) == ["ACGT", "CGTT", "GTTG", "TTGC", "TGCA"]


def test_check_acgt_list_uppercases_and_names_the_first_bad_letter():
    from dnalm_utils.codec import check_acgt_list
    from dnalm_utils.errors import ParameterError

    assert check_acgt_list(["acgt", "TTgA"]) == ["ACGT", "TTGA"]
    with pytest.raises(ParameterError, match=r"windows\[1\] holds 'N' at position 3: ACGT only \(why\)"):
        check_acgt_list(["ACGT", "ACGNA"], name="windows", why="why")
    for bad, match in ((["AC", ""], r"inputs\[1\] is ''"), ([], "empty"), ("ACGT", "not one string"),
                       (["AC", 5], r"inputs\[1\] is 5"), (["ACRT"], "'R' at position 2")):
        with pytest.raises(ParameterError, match=match):
            check_acgt_list(bad)
