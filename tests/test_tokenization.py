"""Tokenizers: DNABERT's exact vocabulary, spans, round trips, HF folders, overlap arithmetic, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnalm_utils import tokenization as T
from dnalm_utils.errors import ParameterError, SequenceAlphabetError, VocabularyMismatchError

acgt = st.text(alphabet="ACGT", min_size=8, max_size=300)
acgtn = st.text(alphabet="ACGTNacgtn", min_size=1, max_size=300)


def seq2kmer(seq: str, k: int) -> list[str]:
    """DNABERT's reference conversion (motif_utils.seq2kmer), written plainly."""
    return [seq[i : i + k] for i in range(len(seq) + 1 - k)]


# --- DNABERT conventions ---------------------------------------------------------------------------
@pytest.mark.parametrize("k", range(1, 9))
def test_overlapping_vocabulary_is_dnaberts(k):
    tok = T.OverlappingKmerTokenizer(k)
    assert tok.vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert tok.vocab[5:] == ["".join(p) for p in itertools.product("ATCG", repeat=k)]
    assert tok.vocab_size == 4**k + 5
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)


def test_known_dnabert6_ids():
    tok = T.OverlappingKmerTokenizer(6)
    assert [tok.token_to_id[t] for t in ("AAAAAA", "AAAAAT", "AAAAAC", "AAAAAG")] == [5, 6, 7, 8]
    assert tok.token_to_id["GGGGGG"] == 4100


@settings(max_examples=60, deadline=None)
@given(seq=acgt, k=st.integers(1, 8))
def test_overlapping_matches_seq2kmer_spans_and_decodes(seq, k):
    tok = T.OverlappingKmerTokenizer(k)
    enc = tok.encode(seq)
    assert tok.convert_ids_to_tokens(enc.ids) == seq2kmer(seq, k)
    assert len(enc) == tok.n_tokens(len(seq)) == len(seq) - k + 1
    for (s, e), kmer in zip(enc.spans, seq2kmer(seq, k)):
        assert seq[s:e] == kmer
    assert tok.decode(enc.ids) == seq


def test_lowercase_soft_masking_is_read_as_upper():
    tok = T.OverlappingKmerTokenizer(3)
    assert (tok.encode("acgTTg").ids == tok.encode("ACGTTG").ids).all()


@settings(max_examples=60, deadline=None)
@given(seq=acgtn, k=st.integers(2, 8))
def test_nonoverlapping_rule_spans_and_round_trip(seq, k):
    tok = T.NonOverlappingKmerTokenizer(k)
    enc = tok.encode(seq)
    up = seq.upper()
    # Spans tile the sequence exactly, in order.
    assert enc.spans[0, 0] == 0 and enc.spans[-1, 1] == len(seq)
    assert (enc.spans[1:, 0] == enc.spans[:-1, 1]).all()
    assert tok.decode(enc.ids) == up
    # The NT rule, checked against a plain reference implementation.
    expected = []
    for run in _split_keep_n(up):
        if run == "N":
            expected.append("N")
            continue
        full = len(run) // k * k
        expected += [run[i : i + k] for i in range(0, full, k)] + list(run[full:])
    assert tok.convert_ids_to_tokens(enc.ids) == expected


def _split_keep_n(seq):
    out, cur = [], ""
    for c in seq:
        if c == "N":
            if cur:
                out.append(cur)
            out.append("N")
            cur = ""
        else:
            cur += c
    if cur:
        out.append(cur)
    return out


@settings(max_examples=40, deadline=None)
@given(seq=acgtn)
def test_nucleotide_tokenizer_round_trip(seq):
    tok = T.NucleotideTokenizer()
    enc = tok.encode(seq)
    assert tok.decode(enc.ids) == seq.upper()
    assert (enc.spans[:, 1] - enc.spans[:, 0] == 1).all()


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(1)
    # A corpus with repeats, so BPE finds merges beyond chance.
    unit = "".join(rng.choice(list("ACGT"), 37))
    return ["".join(rng.choice(list("ACGT"), 3000)) + unit * 40 for _ in range(5)]


@pytest.fixture(scope="module")
def bpe(corpus):
    return T.BPETokenizer.train(corpus, vocab_size=128)


def test_bpe_trains_spans_and_round_trip(bpe, corpus):
    assert bpe.vocab_size == 128
    assert bpe.vocab[:5] == list(T.SPECIAL_TOKENS)
    seq = corpus[0][:700]
    enc = bpe.encode(seq)
    assert bpe.decode(enc.ids) == seq
    for (s, e), token in zip(enc.spans, bpe.convert_ids_to_tokens(enc.ids)):
        assert seq[s:e] == token
    assert max(len(t) for t in bpe.vocab) > 3  # it merged something


def test_bpe_training_is_deterministic(corpus, bpe):
    assert T.BPETokenizer.train(corpus, vocab_size=128).vocab == bpe.vocab


# --- Hugging Face folders ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["overlapping", "nonoverlapping", "nucleotide", "bpe"])
def test_save_load_and_autotokenizer_agree(tmp_path, name, bpe, corpus):
    from transformers import AutoTokenizer

    tok = {
        "overlapping": T.OverlappingKmerTokenizer(5),
        "nonoverlapping": T.NonOverlappingKmerTokenizer(6),
        "nucleotide": T.NucleotideTokenizer(),
        "bpe": bpe,
    }[name]
    seq = corpus[1][:400] + "N" + corpus[1][400:450] if name != "overlapping" else corpus[1][:450]
    tok.save_pretrained(tmp_path / "tok")
    loaded = T.load_tokenizer(tmp_path / "tok")
    assert type(loaded) is type(tok) and loaded.vocab == tok.vocab and loaded.k == tok.k
    assert (loaded.encode(seq).ids == tok.encode(seq).ids).all()
    hf = AutoTokenizer.from_pretrained(tmp_path / "tok")
    text = tok.kmer_string(seq) if name == "overlapping" else seq
    assert hf(text)["input_ids"] == tok.encode_ids(seq, add_special_tokens=True).tolist()


def test_dnabert_folder_with_lowercasing_config_still_yields_no_unk(tmp_path):
    """DNABERT's hub tokenizer_config says do_lower_case: true; our loader must ignore it."""
    (tmp_path / "vocab.txt").write_text("\n".join(T.OverlappingKmerTokenizer(4).vocab) + "\n")
    (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": true}')
    tok = T.load_tokenizer(tmp_path)
    assert isinstance(tok, T.OverlappingKmerTokenizer) and tok.k == 4
    ids = tok.encode_ids("ACGTTGCAAGT", add_special_tokens=True)
    assert tok.unk_id not in ids
    assert tok.unk_id not in tok.to_hf()(tok.kmer_string("ACGTTGCAAGT"))["input_ids"]


def test_detect_tokenizer_from_vocabularies():
    nt_vocab = ["<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>"] + T.kmer_vocabulary(6) + list("ATCGN")
    nt = T.detect_tokenizer(nt_vocab)
    assert isinstance(nt, T.NonOverlappingKmerTokenizer) and nt.k == 6
    assert nt.mask_id == 2 and nt.cls_id == 3 and nt.sep_id == 4
    assert nt.convert_ids_to_tokens(nt.encode("AAAAAATTN").ids) == ["AAAAAA", "T", "T", "N"]
    assert isinstance(T.detect_tokenizer(T.OverlappingKmerTokenizer(3).vocab), T.OverlappingKmerTokenizer)
    assert isinstance(T.detect_tokenizer(list(T.SPECIAL_TOKENS) + list("ACGTN")), T.NucleotideTokenizer)
    with pytest.raises(VocabularyMismatchError, match="cannot tell"):
        T.detect_tokenizer(list(T.SPECIAL_TOKENS) + T.kmer_vocabulary(3)[:10])


# --- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [0, 9, -1])
def test_k_out_of_range(k):
    with pytest.raises(ParameterError, match="k="):
        T.OverlappingKmerTokenizer(k)


def test_non_acgt_characters_are_named():
    tok = T.OverlappingKmerTokenizer(3)
    with pytest.raises(SequenceAlphabetError, match=r"'X' at position 4"):
        tok.encode("ACGTXAC")
    with pytest.raises(SequenceAlphabetError, match="position 2 holds N"):
        tok.encode("ACNGT")
    with pytest.raises(SequenceAlphabetError, match="IUPAC"):
        T.NonOverlappingKmerTokenizer(3).encode("ACGRT")
    with pytest.raises(SequenceAlphabetError, match="non-ASCII"):
        tok.encode("ACGTé")


def test_unk_mode_maps_windows_with_n_to_unk():
    tok = T.OverlappingKmerTokenizer(3, on_invalid="unk")
    ids = tok.encode("ACGNTTA").ids
    assert ids.tolist()[:1] == [tok.token_to_id["ACG"]]
    assert (ids[1:4] == tok.unk_id).all() and ids[4] == tok.token_to_id["TTA"]


def test_sequence_shorter_than_k():
    with pytest.raises(ParameterError, match="shorter than k=6"):
        T.OverlappingKmerTokenizer(6).encode("ACGT")


def test_model_vocab_mismatch_is_explained():
    with pytest.raises(VocabularyMismatchError, match=r"4101 tokens.*1029.*4\^6 \+ 5"):
        T.OverlappingKmerTokenizer(5).check_model_vocab(4101)
    T.OverlappingKmerTokenizer(6).check_model_vocab(4101)


def test_inconsistent_kmers_are_refused_by_strict_decode():
    tok = T.OverlappingKmerTokenizer(3)
    ids = [tok.token_to_id["ACG"], tok.token_to_id["TTT"]]
    with pytest.raises(ValueError, match="do not overlap"):
        tok.decode(ids)
    assert tok.decode(ids, strict=False) == "ACGT"


def test_batch_encode_shapes_and_padding():
    tok = T.NonOverlappingKmerTokenizer(3)
    out = tok.batch_encode(["ACGTAC", "ACGTACGTA"], return_tensors="np")
    assert out["input_ids"].shape == (2, 5)
    assert out["input_ids"][0].tolist() == [tok.cls_id, *tok.encode("ACGTAC").ids, tok.sep_id, tok.pad_id]
    assert out["attention_mask"].sum(1).tolist() == [4, 5]
    with pytest.raises(ParameterError, match="max_length=4"):
        tok.batch_encode(["ACGTACGTA"], max_length=4)


# --- overlap arithmetic (the paper's leak) ------------------------------------------------------------
@pytest.mark.parametrize("k", range(3, 7))
@pytest.mark.parametrize("m", range(1, 10))
def test_hidden_nucleotides_matches_brute_force(k, m):
    """Mask m contiguous k-mers in a longer sequence; count nucleotides no unmasked k-mer contains."""
    n_tokens, a = 40, 15
    masked = np.zeros(n_tokens, dtype=bool)
    masked[a : a + m] = True
    covered = set()
    for i in np.flatnonzero(~masked):
        covered.update(range(i, i + k))
    hidden_brute = sorted(set(range(a, a + m + k - 1)) - covered)
    assert len(hidden_brute) == T.hidden_nucleotides(m, k) == max(0, m - k + 1)
    assert (np.array(hidden_brute, dtype=int) - a).tolist() == T.hidden_span_positions(m, k).tolist()
    revealed = T.revealed_nucleotides(masked, k)
    assert sorted(np.flatnonzero(~revealed).tolist()) == hidden_brute


def test_overlap_table_columns():
    table = T.overlap_table([4, 6])
    row = table[(table.k == 6) & (table.m == 6)].iloc[0]
    assert row.hidden_nt == 1 and row.candidates == 4 and row.masked_nt == 11
    assert (table.revealed_nt + table.hidden_nt == table.masked_nt).all()


def test_token_counts_sum_to_tokens():
    tok = T.OverlappingKmerTokenizer(2)
    counts = T.token_counts(tok, ["ACGT", "AAAA"])
    assert counts.sum() == 6 and counts[tok.token_to_id["AA"]] == 3


def test_overlap_only_guess_reads_neighbours_and_guesses_hidden():
    windows = ["A" * 40] * 20
    right = T.overlap_only_guess(windows, 4, range(1, 8), guess="A")
    wrong = T.overlap_only_guess(windows, 4, range(1, 8), guess="C")
    assert (right.span_accuracy == 1).all()
    assert (wrong.span_accuracy == (wrong.m < 4).astype(float)).all()
    assert (wrong.observed_hidden == wrong.hidden_nt).all()
    with pytest.raises(ParameterError, match="too few"):
        T.overlap_only_guess(["ACGTACGT"], 4, [4])


def test_standard_tokenizers_and_vocabulary_usage(corpus):
    toks = T.standard_tokenizers(3, corpus, bpe_vocab_size=64)
    assert [t.scheme for t in toks.values()] == ["overlapping", "nonoverlapping", "nucleotide", "bpe"]
    table, counts = T.vocabulary_usage(toks, corpus)
    n_nt = sum(map(len, corpus))
    row = table.set_index("scheme").loc["overlapping"]
    assert row.tokens == sum(len(s) - 2 for s in corpus) and row.vocabulary == 64
    assert table.set_index("scheme").loc["nucleotide"].tokens == n_nt
    assert (table.used + table.unused == table.vocabulary).all()
    with pytest.raises(ParameterError, match="k >= 2"):
        T.standard_tokenizers(1, corpus)


def test_save_pretrained_keeps_other_files_in_the_folder(tmp_path):
    (tmp_path / "model.safetensors").write_text("weights")
    T.NucleotideTokenizer().save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").read_text() == "weights"
    assert isinstance(T.load_tokenizer(tmp_path), T.NucleotideTokenizer)


@pytest.mark.parametrize("k", [3, 4, 6])
def test_overlap_only_token_accuracy(k):
    assert all(T.overlap_only_token_accuracy(m, k) == 1.0 for m in range(1, k))
    assert T.overlap_only_token_accuracy(k, k) == pytest.approx(0.25)  # every masked k-mer holds the hidden nt
    # m = k + 1: two hidden nucleotides; the first and last masked k-mers hold one, the middle ones both.
    expected = (2 * 0.25 + (k - 1) * 0.0625) / (k + 1)
    assert T.overlap_only_token_accuracy(k + 1, k) == pytest.approx(expected)


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_leak_bound_matches_brute_force(k):
    """Enumerate every fill of the hidden letters (uniform guess) on a random sequence: the expected share of
    masked k-mers rebuilt exactly, per position, is the analytic bound."""
    rng = np.random.default_rng(k)
    seq = "".join(rng.choice(list("ACGT"), 3 * k + 8))
    tok = T.OverlappingKmerTokenizer(k)
    n_tok = len(seq) - k + 1
    a = 1
    for m in range(1, k + 4):
        masked = np.zeros(n_tok, dtype=bool)
        masked[a : a + m] = True
        hidden = np.flatnonzero(~T.revealed_nucleotides(masked, k, len(seq)))
        right = np.zeros(m)
        fills = list(itertools.product("ACGT", repeat=len(hidden)))
        for fill in fills:
            letters = list(seq)
            for p, c in zip(hidden, fill):
                letters[p] = c
            right += [("".join(letters[j : j + k]) == seq[j : j + k]) for j in range(a, a + m)]
        np.testing.assert_allclose(right / len(fills), T.overlap_only_position_accuracy(m, k))
        assert T.overlap_only_token_accuracy(m, k) == pytest.approx((right / len(fills)).mean())


@pytest.mark.parametrize("k", [1, 3, 6])
def test_kmer_ids_follow_the_codec_packing_and_the_dnabert_vocabulary(k):
    from dnalm_utils import codec

    tok = T.OverlappingKmerTokenizer(k)
    values = np.arange(4 ** k, dtype=np.uint64)
    ids = tok.kmer_ids(values)
    # the token of packed value v is the k-mer codec.unpack_kmers spells, wherever DNABERT's ATCG order puts it
    assert [tok.vocab[i] for i in ids] == codec.unpack_kmers(values, k)
    assert (ids - len(T.SPECIAL_TOKENS)).tolist() == codec.to_dnabert_index(values, k).astype(np.int64).tolist()
    assert tok.kmer_values(ids).tolist() == values.astype(np.int64).tolist()
    assert tok.kmer_values([tok.mask_id]).tolist() == [-1]
    seq = "GATTACAGATTACA"[: max(k, 8)]
    assert tok.encode(seq).ids.tolist() == tok.kmer_ids(codec.kmer_codes(seq, k)[0]).tolist()
    with pytest.raises(ParameterError, match="k-mer values"):
        tok.kmer_ids([4 ** k])


def test_nucleotide_codes_are_the_codec_codes_and_name_a_bad_character():
    from dnalm_utils import codec

    assert T.nucleotide_codes("ACGTNnRacgt").tolist() == codec.encode("ACGTNnRacgt").tolist()
    with pytest.raises(SequenceAlphabetError, match="'X' at position 2"):
        T.nucleotide_codes("ACXT")
