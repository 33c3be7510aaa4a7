"""The analysis cache (result_cache.Memo): fingerprints follow content, not identity; a value is computed once and
read back while its inputs and code are unchanged; a changed argument, a changed module in the function's import
closure or a corrupt entry recomputes; a figure or docstring edit does not; calls that write files are never cached."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from dnalm_utils import cache as C
from dnalm_utils import masking as MK
from dnalm_utils import models as M
from dnalm_utils import ngram
from dnalm_utils import result_cache as R
from dnalm_utils.errors import ParameterError
from finetune_fixtures import random_seqs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny DNABERT-3 loaded through the model interface, as the chapters load theirs."""
    folder = M.make_tiny_dnabert(tmp_path_factory.mktemp("memo") / "tiny3", k=3, max_positions=96)
    return M.load_model(folder)


def _windows(n=6, length=60, seed=0):
    return random_seqs(n, length=length, seed=seed)


def test_fingerprints_follow_content_not_identity():
    a = {"x": np.arange(6, dtype=np.int64).reshape(2, 3), "t": pd.DataFrame({"a": [1, 2], "b": ["u", "v"]}),
         "s": "ACGT" * 40, "f": 0.1, "nested": [(1, 2), {3}]}
    b = {"nested": [(1, 2), {3}], "f": 0.1, "s": "ACGT" * 40, "t": pd.DataFrame({"a": [1, 2], "b": ["u", "v"]}),
         "x": np.arange(6, dtype=np.int64).reshape(2, 3)}
    assert R.fingerprint(a) == R.fingerprint(b)  # equal content, other objects, other insertion order
    changes = [("x", np.arange(6, dtype=np.int32).reshape(2, 3)), ("x", np.arange(6, dtype=np.int64).reshape(3, 2)),
               ("t", pd.DataFrame({"a": [1, 3], "b": ["u", "v"]})), ("t", pd.DataFrame({"a": [1, 2], "c": ["u", "v"]})),
               ("s", "ACGT" * 39 + "ACGA"), ("f", 0.1 + 1e-12), ("nested", [(1, 2), {4}]), ("nested", [[1, 2], {3}])]
    for key, value in changes:
        assert R.fingerprint({**a, key: value}) != R.fingerprint(a), key
    assert R.fingerprint(1) != R.fingerprint(1.0) and R.fingerprint(True) != R.fingerprint(1.0)
    assert R.fingerprint(range(3)) != R.fingerprint(range(4))
    assert R.fingerprint(torch.ones(3)) != R.fingerprint(torch.ones(3, dtype=torch.bfloat16))


def test_model_fingerprint_reads_weights_and_tokenizer(tiny):
    before = R.fingerprint(tiny)
    assert R.fingerprint(tiny) == before
    with torch.no_grad():
        p = next(tiny.model.parameters())
        p[0, 0] += 1.0
        assert R.fingerprint(tiny) != before  # one changed weight
        p[0, 0] -= 1.0
    assert R.fingerprint(tiny) == before


def test_counts_fingerprint_ignores_which_tables_are_built():
    seqs = _windows(4, 200)
    counts = ngram.KmerCounts(seqs, max_len=6)
    before = R.fingerprint(counts)
    counts.table(3)  # built lazily on use
    assert R.fingerprint(counts) == before
    assert R.fingerprint(ngram.KmerCounts(seqs, max_len=5)) != before
    assert R.fingerprint(ngram.KmerCounts(seqs[:3], max_len=6)) != before
    # a package closure is keyed by what it closes over
    model = ngram.two_sided_model(counts, {1: 2})
    assert R.fingerprint(model) == R.fingerprint(ngram.two_sided_model(counts, {1: 2}))
    assert R.fingerprint(model) != R.fingerprint(ngram.two_sided_model(counts, {1: 3}))


def test_a_named_file_stands_for_its_content(tmp_path):
    f = tmp_path / "corpus.fa"
    f.write_text(">a\nACGT\n")
    before = R.fingerprint(str(f))
    assert R.fingerprint(f) == before
    f.write_text(">a\nACGA\n")
    assert R.fingerprint(str(f)) != before


def test_unreadable_arguments_are_refused_by_name():
    with pytest.raises(ParameterError, match=r"value\['handle'\].*BytesIO"):
        R.fingerprint({"handle": io.BytesIO(b"x")})
    with pytest.raises(ParameterError, match="only dnalm_utils functions"):
        R.fingerprint([lambda x: x])
    memo = R.Memo("unused")
    with pytest.raises(ParameterError, match="module level"):
        memo(lambda x: x, 1)
    with pytest.raises(ParameterError, match="nucleotide_frequencies"):
        memo(ngram.nucleotide_frequencies, "ACGT", no_such_argument=1)


def test_memo_computes_once_and_reads_back(tmp_path, tiny):
    memo = R.Memo(tmp_path / "cache")
    windows = _windows()
    first = memo(MK.span_mask_sweep, tiny, windows, [1, 2], seed=1)
    assert (memo.misses, memo.hits, memo.last_hit) == (1, 0, False)
    again = memo(MK.span_mask_sweep, tiny, list(windows), [1, 2], seed=1)
    assert (memo.misses, memo.hits, memo.last_hit) == (1, 1, True)
    pd.testing.assert_frame_equal(again, first)
    pd.testing.assert_frame_equal(again, MK.span_mask_sweep(tiny, windows, [1, 2], seed=1))  # what a fresh call gives
    memo(MK.span_mask_sweep, tiny, windows, [1, 2], seed=2)  # another argument: computed
    assert (memo.misses, memo.hits) == (2, 1)
    entries = sorted((tmp_path / "cache").glob("analysis-result-*.entry"))
    assert len(entries) == 2
    # the same call in another process state (a new Memo on the same folder) is read back
    other = R.Memo(tmp_path / "cache")
    other(MK.span_mask_sweep, tiny, windows, [1, 2], seed=1)
    assert (other.hits, other.misses) == (1, 0)
    # how to compute (executor, progress, the cache folder of another cache) is not in the key
    assert R.Memo("x").key(ngram.held_out_order, ["ACGT" * 30], [1], orders=[0, 1], window_nt=20, seed=0).key == \
        R.Memo("y").key(ngram.held_out_order, ["ACGT" * 30], [1], orders=[0, 1], window_nt=20, seed=0).key


def test_a_corrupt_entry_is_recomputed_and_replaced(tmp_path):
    memo = R.Memo(tmp_path)
    value = memo(ngram.nucleotide_frequencies, ["ACGTTT", "GGA"])
    (entry,) = tmp_path.glob("analysis-result-*.entry")
    raw = entry.read_bytes()
    entry.write_bytes(raw[:-3] + bytes([raw[-3] ^ 0xFF]) + raw[-2:])  # one byte of the pickled body altered
    again = memo(ngram.nucleotide_frequencies, ["ACGTTT", "GGA"])
    assert (memo.misses, memo.hits) == (2, 0)
    np.testing.assert_array_equal(again, value)
    assert entry.read_bytes() == raw  # rewritten whole
    entry.write_bytes(raw[: len(raw) // 2])  # truncated
    memo(ngram.nucleotide_frequencies, ["ACGTTT", "GGA"])
    assert memo.misses == 3


def test_without_a_cache_folder_every_call_computes(tmp_path, monkeypatch):
    off = R.Memo("")
    off(ngram.nucleotide_frequencies, "ACGT")
    off(ngram.nucleotide_frequencies, "ACGT")
    assert (off.hits, off.misses) == (0, 0)
    monkeypatch.chdir(tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written anywhere


def test_calls_that_go_without_their_inner_cache_are_computed(tmp_path, tiny):
    from dnalm_utils import frozen_probes as FP

    memo = R.Memo(tmp_path / "analyses")
    seqs = _windows(4, 30)
    for _ in range(2):
        memo(FP.pooled_features, tiny, seqs, cache_dir=None)
    assert (memo.hits, memo.misses) == (0, 0)  # told to go without the feature cache: computed both times
    for _ in range(2):
        memo(FP.pooled_features, tiny, seqs, cache_dir=tmp_path / "features")
    assert (memo.hits, memo.misses) == (1, 1)


def _patched(package, tag, module, text_from, text_to):
    root = package.parent.parent / tag / "dnalm_utils"
    shutil.copytree(package, root)
    f = root / f"{module}.py"
    source = f.read_text()
    assert text_from in source
    f.write_text(source.replace(text_from, text_to, 1))
    return root


@pytest.fixture()
def package(tmp_path):
    root = tmp_path / "original" / "dnalm_utils"
    shutil.copytree(C.PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def test_the_code_key_covers_the_import_closure_and_nothing_else(package):
    closure = C.import_closure(["masking"], package)
    assert {"masking", "ngram", "codec", "tokenization", "adapters", "families"} <= set(closure)
    assert "plotting" not in closure and "result_cache" not in closure

    def digest(root):
        return C.code_digest(R.KIND, root, modules=C.import_closure(["masking"], root))

    base = digest(package)
    # a change to what a module in the closure does (ngram, imported by masking inside a function) changes the key
    ngram_edit = _patched(package, "ngram_edit", "ngram", "def two_sided_model(", "_EDITED = 1\n\n\ndef two_sided_model(")
    assert digest(ngram_edit) != base
    # a family module reached through adapters -> families counts too
    family_edit = _patched(package, "family_edit", "families/bert", "from __future__ import annotations",
                           "from __future__ import annotations\n_EDITED = 1")
    assert digest(family_edit) != base
    # a figure edit and a docstring edit do not
    figure_edit = _patched(package, "figure_edit", "plotting", "def plot_accuracy_vs_k(", "_EDITED = 1\n\n\ndef plot_accuracy_vs_k(")
    assert digest(figure_edit) == base
    doc_edit = _patched(package, "doc_edit", "ngram", '"""A callable ``(windows, blocks)', '"""Reworded. A callable ``(windows, blocks)')
    assert digest(doc_edit) == base


def test_analysis_modules_of_the_chapters_do_not_import_figure_code():
    """A figure edit must not recompute a cached analysis: no module a chapter memoises imports plotting."""
    for module in ("masking", "ngram", "convergence", "perturbations", "embeddings", "state_probes", "nextkmer",
                   "zero_shot", "frozen_probes", "biotasks", "dependency_maps", "sequence_classes"):
        assert "plotting" not in C.import_closure([module]), module


def test_per_call_kinds_require_their_modules():
    with pytest.raises(ParameterError, match="modules"):
        C.make_key(R.KIND, {"x": 1})
    with pytest.raises(ParameterError, match="DEPENDS_ON"):
        C.make_key("finetune-run", {"x": 1}, modules=["ngram"])
    key = C.make_key(R.KIND, {"x": 1}, modules=["ngram", "codec"])
    assert key.manifest["modules"] == ["codec", "ngram"]
    assert key.key != C.make_key(R.KIND, {"x": 1}, modules=["ngram"]).key


def test_tokenizer_fingerprint_ignores_lookup_tables_built_on_use():
    from dnalm_utils import tokenization as T

    corpus = _windows(20, 300)
    for tok in (T.OverlappingKmerTokenizer(4), T.NonOverlappingKmerTokenizer(3), T.NucleotideTokenizer(),
                T.BPETokenizer.train(corpus, vocab_size=40)):
        fresh = R.fingerprint(tok)
        ids = tok.encode(corpus[0]).ids
        tok.decode(ids)
        tok.is_special  # noqa: B018  (a cached property, built on first use)
        assert R.fingerprint(tok) == fresh, type(tok).__name__
    assert R.fingerprint(T.OverlappingKmerTokenizer(4)) != R.fingerprint(T.OverlappingKmerTokenizer(5))
    assert R.fingerprint(T.OverlappingKmerTokenizer(4).set_framing(("cls",), ())) != \
        R.fingerprint(T.OverlappingKmerTokenizer(4))
    assert R.fingerprint(T.BPETokenizer.train(corpus, vocab_size=40)) != R.fingerprint(T.BPETokenizer.train(corpus, vocab_size=60))
