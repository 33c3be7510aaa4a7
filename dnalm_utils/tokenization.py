"""DNA tokenizers that map every token back to its nucleotide span, plus the overlap arithmetic.

Four schemes, one interface (:class:`DNATokenizer`):

* ``overlapping``    -- DNABERT's overlapping k-mers (stride 1), k = 1..8. Vocabulary exactly as in
  DNABERT's ``vocab.txt``: ids 0-4 are ``[PAD] [UNK] [CLS] [SEP] [MASK]``, then every k-mer in
  ``itertools.product("ATCG")`` order (A, T, C, G; *not* alphabetical; the only place the package meets that
  order, through ``codec.to_dnabert_index`` / ``codec.from_dnabert_index``). Token i covers nucleotides
  ``[i, i + k)``, so a sequence of L nt gives L - k + 1 tokens.
* ``nonoverlapping`` -- Nucleotide-Transformer-style k-mers read left to right. Rule for leftovers: inside
  every N-free stretch, k-mers are taken from its start; the < k nucleotides left at the end of the
  stretch, and every N, become single-nucleotide tokens. Vocabulary: specials, k-mers (ATCG order),
  then ``A T C G N``.
* ``nucleotide``     -- one token per nucleotide (specials, then ``A T C G N``).
* ``bpe``            -- byte-pair encoding trained with the ``tokenizers`` library on the corpus
  (DNABERT-2 style).

All encoders are vectorised with numpy (or run inside the Rust ``tokenizers`` library for BPE): there is
no Python loop per k-mer. Every tokenizer saves to, and loads from, a Hugging Face tokenizer folder
(``AutoTokenizer.from_pretrained`` works on it) with an extra ``dnalm_tokenizer.json`` naming the scheme.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import codec
from .errors import (
    ParameterError,
    SequenceAlphabetError,
    VocabularyMismatchError,
    check_int_range,
)

#: DNABERT's special tokens; their ids are 0..4 in this order.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
#: Single-nucleotide tokens used by the nucleotide scheme and for leftovers of non-overlapping k-mers, in the
#: vocabulary order of DNABERT and the Nucleotide Transformer (codec.DNABERT_ORDER, then N).
SINGLE_NUCLEOTIDES = (*codec.DNABERT_ORDER, "N")
SCHEMES = ("overlapping", "nonoverlapping", "nucleotide", "bpe")
MAX_K = 8
METADATA_FILE = "dnalm_tokenizer.json"

#: Letters in the order of the package's nucleotide codes (codec.encode: A, C, G, T = 0..3, N = codec.N_CODE):
#: row i of a code -> id lookup is the token of letter i.
_CODE_LETTERS = (*codec.LETTERS, "N")

_ROLE_NAMES = {  # role -> spellings seen in DNABERT (BERT) and Nucleotide Transformer (ESM) vocabularies
    "pad": ("[PAD]", "<pad>"),
    "unk": ("[UNK]", "<unk>"),
    "cls": ("[CLS]", "<cls>"),
    "sep": ("[SEP]", "<eos>", "</s>"),
    "mask": ("[MASK]", "<mask>"),
}


def kmer_vocabulary(k: int) -> list[str]:
    """All 4**k k-mers in DNABERT's vocabulary order (``itertools.product(codec.DNABERT_ORDER, repeat=k)``):
    entry i is the k-mer whose codec.to_dnabert_index is i."""
    k = check_int_range("k", k, 1, MAX_K)
    return codec.unpack_kmers(codec.from_dnabert_index(np.arange(4**k, dtype=np.uint64), k), k)


def nucleotide_codes(seq: str | bytes | np.ndarray, *, where: str = "sequence") -> np.ndarray:
    """(L,) uint8 codes of :func:`codec.encode` (A, C, G, T -> 0..3, N -> 4, other IUPAC -> 5, any case); raise
    SequenceAlphabetError on any other character."""
    if isinstance(seq, np.ndarray):
        seq = seq.astype(np.uint8, copy=False).tobytes()
    else:
        if isinstance(seq, str):
            try:
                seq = seq.encode("ascii")
            except UnicodeEncodeError as exc:
                raise SequenceAlphabetError(
                    f"{where}: non-ASCII character {seq[exc.start]!r} at position {exc.start}; "
                    "DNA must be written with the letters A, C, G, T (N for unknown)."
                ) from None
    codes = codec.encode(seq)
    bad = np.flatnonzero(codes == codec.INVALID)
    if bad.size:
        pos = int(bad[0])
        raise SequenceAlphabetError(
            f"{where}: character {chr(bytes(seq)[pos])!r} at position {pos} is not a nucleotide "
            f"({bad.size} such characters in all). Use only A, C, G, T (N for unknown); "
            "strip numbers, spaces and FASTA headers first (genome.read_fasta does this)."
        )
    return codes


def _first_unsupported(codes: np.ndarray, allowed_max: int, where: str, fix: str) -> None:
    bad = np.flatnonzero(codes > allowed_max)
    if bad.size:
        pos = int(bad[0])
        letter = "N" if codes[pos] == 4 else "an IUPAC ambiguity code"
        raise SequenceAlphabetError(
            f"{where}: position {pos} holds {letter} ({bad.size} non-ACGT positions in all), "
            f"which this tokenizer cannot encode. {fix}"
        )


def _acgtn_codes(seq, where: str) -> np.ndarray:
    """Codes of a non-empty sequence of A, C, G, T and N (schemes with an N token); raise otherwise."""
    codes = nucleotide_codes(seq, where=where)
    _first_unsupported(codes, 4, where, "Replace ambiguity codes other than N by N, or split into ACGT segments.")
    if codes.shape[0] == 0:
        raise ParameterError(f"{where} is empty; nothing to tokenize.")
    return codes


@dataclass(frozen=True)
class Encoding:
    """Token ids of one sequence (no special tokens) and the nucleotides each token covers.

    ids: (n_tokens,) int64. spans: (n_tokens, 2) int64, ``[start, end)`` in nucleotides of the input.
    """

    ids: np.ndarray
    spans: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])


class DNATokenizer:
    """Base class: a vocabulary (token -> id), the special tokens, encode / decode / save / load."""

    scheme: str = ""

    def __init__(self, vocab: Sequence[str] | dict[str, int], *, k: int | None = None):
        if isinstance(vocab, dict):
            size = max(vocab.values()) + 1
            tokens = [None] * size
            for tok, i in vocab.items():
                tokens[i] = tok
            tokens = [t if t is not None else f"[unused{i}]" for i, t in enumerate(tokens)]
        else:
            tokens = list(vocab)
        if len(set(tokens)) != len(tokens):
            dup = next(t for t in tokens if tokens.count(t) > 1)
            raise VocabularyMismatchError(f"vocabulary lists token {dup!r} twice; a vocabulary needs unique tokens.")
        self.vocab: list[str] = tokens
        self.token_to_id: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        self.k = k
        self.special_tokens: dict[str, str] = {}
        for role, names in _ROLE_NAMES.items():
            for name in names:
                if name in self.token_to_id:
                    self.special_tokens[role] = name
                    break
        missing = [r for r in ("pad", "unk", "cls", "sep", "mask") if r not in self.special_tokens]
        if missing:
            raise VocabularyMismatchError(
                f"vocabulary has no {', '.join(missing)} token (looked for {[_ROLE_NAMES[r][0] for r in missing]}); "
                "a masked DNA language model needs [PAD] [UNK] [CLS] [SEP] [MASK]."
            )

    # --- ids of special tokens -------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def special_id(self, role: str) -> int:
        """Id of the special token with ``role`` in {pad, unk, cls, sep, mask}."""
        return self.token_to_id[self.special_tokens[role]]

    pad_id = property(lambda self: self.special_id("pad"))
    unk_id = property(lambda self: self.special_id("unk"))
    cls_id = property(lambda self: self.special_id("cls"))
    sep_id = property(lambda self: self.special_id("sep"))
    mask_id = property(lambda self: self.special_id("mask"))

    @cached_property
    def special_ids(self) -> np.ndarray:
        """(n_special,) int64 ids of every special token."""
        return np.array(sorted(self.token_to_id[t] for t in self.special_tokens.values()), dtype=np.int64)

    @cached_property
    def is_special(self) -> np.ndarray:
        """(vocab_size,) bool: True for special (non-nucleotide) tokens."""
        mask = np.zeros(self.vocab_size, dtype=bool)
        for i, tok in enumerate(self.vocab):
            mask[i] = not tok or any(c not in "ACGTN" for c in tok)
        return mask

    @property
    def description(self) -> str:
        return self.scheme

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}, vocab {self.vocab_size}>"

    # --- encoding --------------------------------------------------------------------------------
    def encode(self, seq: str, *, where: str = "sequence") -> Encoding:
        """Token ids and nucleotide spans of ``seq`` (case-insensitive), without special tokens."""
        raise NotImplementedError

    def encode_ids(self, seq: str, *, add_special_tokens: bool = False, where: str = "sequence") -> np.ndarray:
        """(n_tokens,) int64 ids of ``seq``; with ``[CLS]`` ... ``[SEP]`` if ``add_special_tokens``."""
        ids = self.encode(seq, where=where).ids
        if add_special_tokens:
            ids = self.frame([ids])[0][0]
        return ids

    def n_tokens(self, length: int) -> int:
        """Number of tokens (no specials) for an ACGT-only sequence of ``length`` nt."""
        return len(self.encode("A" * length))

    # --- framing: the special tokens a model family puts around a sequence -----------------------
    #: Roles of the special tokens before / after a sequence's tokens. BERT families: [CLS] x [SEP];
    #: Nucleotide Transformer: <cls> x (no <eos>); HyenaDNA: x [SEP]. Set by the model adapter
    #: (:meth:`set_framing`) and saved in ``dnalm_tokenizer.json``.
    prefix_roles: tuple = ("cls",)
    suffix_roles: tuple = ("sep",)

    def set_framing(self, prefix: Sequence[str] = ("cls",), suffix: Sequence[str] = ("sep",)) -> "DNATokenizer":
        """Use ``prefix`` / ``suffix`` special-token roles around every sequence; returns self."""
        for role in (*prefix, *suffix):
            if role not in self.special_tokens:
                raise VocabularyMismatchError(
                    f"framing asks for a {role!r} token but the vocabulary has none ({sorted(self.special_tokens)})."
                )
        self.prefix_roles, self.suffix_roles = tuple(prefix), tuple(suffix)
        return self

    @property
    def body_offset(self) -> int:
        """Column of a sequence's first token in framed input (the number of prefix specials)."""
        return len(self.prefix_roles)

    @property
    def n_framing(self) -> int:
        """Special tokens added around each sequence (prefix + suffix)."""
        return len(self.prefix_roles) + len(self.suffix_roles)

    def frame(self, encodings: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Framed, right-padded model input of token-id rows (no specials in them).

        Returns ``(ids, attention)``, both (rows, width) int64: prefix specials, the row's ids, suffix
        specials, then [PAD] (attention 0). Column of token i of a row: ``body_offset + i``. The one place
        in the package where special tokens and padding are added.
        """
        if len(encodings) == 0:
            raise ParameterError("nothing to frame: pass at least one sequence.")
        pre = np.array([self.special_id(r) for r in self.prefix_roles], dtype=np.int64)
        suf = np.array([self.special_id(r) for r in self.suffix_roles], dtype=np.int64)
        return self.pad([np.concatenate([pre, np.asarray(e, dtype=np.int64), suf]) for e in encodings])

    def pad(self, rows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Right-pad already framed rows of ids to (rows, longest) with [PAD]; attention 1 on real tokens.
        Accepts numpy arrays or 1-D tensors; returns int64 numpy arrays ``(ids, attention)``."""
        lengths = [len(r) for r in rows]
        ids = np.full((len(rows), max(lengths)), self.pad_id, dtype=np.int64)
        att = np.zeros((len(rows), max(lengths)), dtype=np.int64)
        for i, (r, n) in enumerate(zip(rows, lengths)):
            ids[i, :n] = np.asarray(r, dtype=np.int64)
            att[i, :n] = 1
        return ids, att

    def batch_encode(self, seqs: Sequence[str], *, max_length: int | None = None, return_tensors: str = "pt") -> dict:
        """Encode sequences for a model: ``input_ids`` and ``attention_mask`` of shape (batch, tokens).

        Each row is framed as the model family frames it (:meth:`frame`; BERT: ``[CLS] tokens [SEP]``)
        and right-padded with ``[PAD]``; ``spans`` is a list of the per-sequence (n_tokens, 2) nucleotide
        spans (no specials). ``max_length`` (including the specials) raises a ParameterError for sequences
        that do not fit rather than truncating silently.
        """
        encs = [self.encode(s, where=f"sequence {i}") for i, s in enumerate(seqs)]
        width = max(len(e) for e in encs) + self.n_framing
        if max_length is not None and width > max_length:
            raise ParameterError(
                f"a sequence needs {width} tokens with its special tokens but max_length={max_length}; "
                "use shorter windows or a model with more positions."
            )
        ids, mask = self.frame([e.ids for e in encs])
        out = {"input_ids": ids, "attention_mask": mask}
        if return_tensors == "pt":
            import torch

            out = {key: torch.from_numpy(val) for key, val in out.items()}
        out["spans"] = [e.spans for e in encs]
        return out

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        """Token strings of ``ids``."""
        return [self.vocab[int(i)] for i in ids]

    # --- decoding --------------------------------------------------------------------------------
    @cached_property
    def _char_table(self) -> tuple[np.ndarray, np.ndarray]:
        """(vocab, max_len) uint8 token characters and (vocab,) token lengths (0 for specials)."""
        width = max(len(t) for t in self.vocab)
        table = np.zeros((self.vocab_size, width), dtype=np.uint8)
        lengths = np.zeros(self.vocab_size, dtype=np.int64)
        for i, tok in enumerate(self.vocab):
            if not self.is_special[i]:
                table[i, : len(tok)] = np.frombuffer(tok.encode("ascii"), dtype=np.uint8)
                lengths[i] = len(tok)
        return table, lengths

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Nucleotide sequence spelled by ``ids`` (special tokens are skipped)."""
        ids = self._check_ids(ids)
        table, lengths = self._char_table
        chars = table[ids]
        keep = np.arange(table.shape[1])[None, :] < lengths[ids][:, None]
        return chars[keep].tobytes().decode("ascii")

    def _check_ids(self, ids) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise VocabularyMismatchError(
                f"token id {int(ids.max() if ids.max() >= self.vocab_size else ids.min())} is outside this "
                f"tokenizer's vocabulary (0..{self.vocab_size - 1}); the ids come from a different tokenizer."
            )
        return ids

    # --- compatibility with a model --------------------------------------------------------------
    def check_model_vocab(self, model_vocab_size: int, *, model_name: str = "the model") -> None:
        """Raise VocabularyMismatchError unless ``model_vocab_size`` equals this vocabulary's size."""
        if int(model_vocab_size) == self.vocab_size:
            return
        hint = ""
        for k in range(1, MAX_K + 1):
            if model_vocab_size == 4**k + len(SPECIAL_TOKENS):
                hint = f" A vocabulary of {model_vocab_size} = 4^{k} + 5 fits overlapping {k}-mers (DNABERT-{k})."
        raise VocabularyMismatchError(
            f"{model_name} has an embedding table of {model_vocab_size} tokens but the tokenizer "
            f"({self.description}) has {self.vocab_size}.{hint} Load the tokenizer saved with the model "
            "(models.load_model does this) or pass the matching k."
        )

    # --- persistence -----------------------------------------------------------------------------
    def metadata(self) -> dict:
        """What ``dnalm_tokenizer.json`` records: scheme, k, vocabulary size, special tokens."""
        return {"scheme": self.scheme, "k": self.k, "vocab_size": self.vocab_size, "special_tokens": self.special_tokens,
                "framing": {"prefix": list(self.prefix_roles), "suffix": list(self.suffix_roles)}}

    def to_hf(self):
        """A Hugging Face tokenizer with the same vocabulary and ids (see each scheme for its input format)."""
        raise NotImplementedError

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the Hugging Face tokenizer files (plus vocab.txt and dnalm_tokenizer.json) into ``folder``.

        Files are written to a temporary sibling first and then renamed one by one, so each file is whole;
        other files already in ``folder`` (e.g. model weights) are kept.
        """
        import os
        import tempfile

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".tokenizer-", dir=folder.parent) as tmp:
            self._write_folder(Path(tmp))
            for f in Path(tmp).iterdir():
                os.replace(f, folder / f.name)
        return folder

    def _write_folder(self, tmp: Path) -> None:
        hf = self.to_hf()
        hf.save_pretrained(str(tmp))
        (tmp / "vocab.txt").write_text("\n".join(self.vocab) + "\n")
        self._patch_hf_config(tmp)
        (tmp / METADATA_FILE).write_text(json.dumps(self.metadata(), indent=2) + "\n")

    def _patch_hf_config(self, folder: Path) -> None:
        cfg_path = folder / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
        cfg["do_lower_case"] = False
        cfg["model_max_length"] = 512
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        (folder / "special_tokens_map.json").write_text(
            json.dumps({f"{r}_token": t for r, t in self.special_tokens.items()}, indent=2, sort_keys=True) + "\n"
        )


def _default_vocab(body: Sequence[str]) -> list[str]:
    return list(SPECIAL_TOKENS) + list(body)


def _code_lookup(vocab_map: dict[str, int], kmers: Sequence[str], what: str) -> np.ndarray:
    """(len(kmers),) int64 ids of ``kmers`` in a vocabulary; raise if one is missing."""
    missing = [t for t in kmers if t not in vocab_map]
    if missing:
        raise VocabularyMismatchError(
            f"vocabulary lacks {len(missing)} {what} (e.g. {missing[0]!r}); it does not fit this tokenizer."
        )
    return np.array([vocab_map[t] for t in kmers], dtype=np.int64)


def _kmer_lookup(vocab_map: dict[str, int], k: int) -> np.ndarray:
    """(4**k,) int64 token id of every k-mer, indexed by its packed value (codec.kmer_codes, ACGT order)."""
    return _code_lookup(vocab_map, codec.unpack_kmers(np.arange(4**k, dtype=np.uint64), k), f"{k}-mers")


def _window_values(codes: np.ndarray, k: int) -> np.ndarray:
    """(L - k + 1,) intp packed value (codec.kmer_codes) of every k-long window of ``codes``."""
    return codec.kmer_codes(codes, k)[0].view(np.int64)


class OverlappingKmerTokenizer(DNATokenizer):
    """DNABERT's overlapping k-mers: token i = ``seq[i:i+k]``; L nt give L - k + 1 tokens.

    The Hugging Face form (``to_hf``) is DNABERT's: a ``BertTokenizer`` over space-separated k-mers, with
    ``do_lower_case=False`` (DNABERT's shipped ``do_lower_case: true`` turns every k-mer into [UNK]).
    ``on_invalid="unk"`` maps k-mers that contain N (or another ambiguity code) to [UNK] instead of failing.
    """

    scheme = "overlapping"

    def __init__(self, k: int, vocab: Sequence[str] | dict[str, int] | None = None, *, on_invalid: str = "error"):
        k = check_int_range("k", k, 1, MAX_K, hint="Overlapping k-mer tokenizers support k = 1..8 (DNABERT used 3..6).")
        super().__init__(vocab if vocab is not None else _default_vocab(kmer_vocabulary(k)), k=k)
        if on_invalid not in ("error", "unk"):
            raise ParameterError(f"on_invalid={on_invalid!r}: use 'error' or 'unk'.")
        self.on_invalid = on_invalid
        self._code_to_id = _kmer_lookup(self.token_to_id, k)
        self._check_no_extra_tokens()

    def _check_no_extra_tokens(self) -> None:
        extra = [t for t in self.vocab if not self.is_special[self.token_to_id[t]] and len(t) != self.k]
        if extra:
            raise VocabularyMismatchError(
                f"vocabulary holds tokens that are not {self.k}-mers (e.g. {extra[0]!r}); it is not an "
                f"overlapping {self.k}-mer (DNABERT) vocabulary."
            )

    @property
    def description(self) -> str:
        return f"overlapping {self.k}-mers"

    def encode(self, seq: str, *, where: str = "sequence") -> Encoding:
        codes = nucleotide_codes(seq, where=where)
        k = self.k
        if codes.shape[0] < k:
            raise ParameterError(
                f"{where} has {codes.shape[0]} nt, shorter than k={k}: overlapping {k}-mers need at least {k} nt."
            )
        if self.on_invalid == "error":
            _first_unsupported(
                codes, 3, where,
                "Split it into ACGT-only segments (genome.acgt_segments / Genome.segments) or build the "
                "tokenizer with on_invalid='unk'.",
            )
            ids = self._code_to_id[_window_values(codes, k)]
        else:
            values, valid = codec.kmer_codes(codes, k)
            ids = self._code_to_id[values.view(np.int64)]
            ids[~valid] = self.unk_id
        starts = np.arange(ids.shape[0], dtype=np.int64)
        return Encoding(ids=ids, spans=np.stack([starts, starts + k], axis=1))

    def n_tokens(self, length: int) -> int:
        return max(0, int(length) - self.k + 1)

    def decode(self, ids, *, strict: bool = True) -> str:
        """The sequence spelled by consecutive overlapping k-mers: first k-mer + last letter of each next one.

        ``strict`` checks that neighbours agree on their k - 1 shared letters (they always do for ids from
        ``encode``; predictions of a model need not) and raises ValueError otherwise.
        """
        ids = self._check_ids(ids)
        ids = ids[~self.is_special[ids]]
        if ids.size == 0:
            return ""
        if strict and not self.consistent(ids).all():
            bad = int(np.flatnonzero(~self.consistent(ids))[0])
            raise ValueError(
                f"k-mers {bad} and {bad + 1} ({self.vocab[ids[bad]]}, {self.vocab[ids[bad + 1]]}) do not overlap "
                "consistently; decode(..., strict=False) takes the last letter of each k-mer instead."
            )
        table, _ = self._char_table
        return self.vocab[ids[0]] + table[ids[1:], self.k - 1].tobytes().decode("ascii")

    def consistent(self, ids) -> np.ndarray:
        """(n - 1,) bool: k-mer i+1 starts with the last k - 1 letters of k-mer i."""
        code = self.kmer_values(ids)
        return (code[:-1] % 4 ** (self.k - 1)) == (code[1:] // 4)

    def kmer_ids(self, values) -> np.ndarray:
        """Token ids (int64, same shape) of k-mers given as packed values (codec.kmer_codes / codec.pack_codes:
        ACGT order, first letter most significant, 0 .. 4**k - 1)."""
        v = np.asarray(values).astype(np.int64)
        if v.size and (v.min() < 0 or v.max() >= 4**self.k):
            raise ParameterError(f"k-mer values must lie in 0..{4**self.k - 1} (packed {self.k}-mers); got "
                                 f"{int(v.min())}..{int(v.max())}.")
        return self._code_to_id[v]

    def kmer_values(self, ids) -> np.ndarray:
        """Packed value (int64, codec order; -1 for a special token) of each token id, same shape as ``ids``;
        the inverse of :meth:`kmer_ids`."""
        ids = np.asarray(ids, dtype=np.int64)
        return self._id_to_code[self._check_ids(ids).reshape(ids.shape)]

    @cached_property
    def _id_to_code(self) -> np.ndarray:
        out = np.full(self.vocab_size, -1, dtype=np.int64)
        out[self._code_to_id] = np.arange(self._code_to_id.shape[0])
        return out

    def kmer_string(self, seq: str) -> str:
        """DNABERT's input format: the space-separated overlapping k-mers of ``seq`` (``seq2kmer``)."""
        ids = self.encode(seq).ids
        return " ".join(self.convert_ids_to_tokens(ids))

    def to_hf(self):
        from transformers import BertTokenizer

        t = self.special_tokens
        return BertTokenizer(
            vocab=dict(self.token_to_id), do_lower_case=False, tokenize_chinese_chars=False,
            unk_token=t["unk"], sep_token=t["sep"], pad_token=t["pad"], cls_token=t["cls"], mask_token=t["mask"],
            model_max_length=512,
        )


class NonOverlappingKmerTokenizer(DNATokenizer):
    """Nucleotide-Transformer-style k-mers, read left to right without overlap.

    Inside each N-free stretch, k-mers are taken from its first nucleotide; the < k nucleotides left at the
    end of the stretch and every N become single-nucleotide tokens. The Hugging Face form is a fast
    tokenizer whose pre-tokenizer applies the same rule to a raw sequence (regex ``[ACGT]{k}|.``).
    """

    scheme = "nonoverlapping"

    def __init__(self, k: int, vocab: Sequence[str] | dict[str, int] | None = None):
        k = check_int_range("k", k, 2, MAX_K, hint="Use the nucleotide scheme for k = 1.")
        super().__init__(vocab if vocab is not None else _default_vocab(kmer_vocabulary(k) + list(SINGLE_NUCLEOTIDES)), k=k)
        self._code_to_id = _kmer_lookup(self.token_to_id, k)
        self._single_to_id = _code_lookup(self.token_to_id, _CODE_LETTERS, "single-nucleotide tokens")

    @property
    def description(self) -> str:
        return f"non-overlapping {self.k}-mers"

    def encode(self, seq: str, *, where: str = "sequence") -> Encoding:
        codes = _acgtn_codes(seq, where)
        k, n = self.k, codes.shape[0]
        acgt = codes < 4
        # Start and length of the N-free stretch that holds each ACGT position.
        edges = np.flatnonzero(np.diff(np.r_[0, acgt.astype(np.int8), 0]))
        run_starts, run_lens = edges[0::2], edges[1::2] - edges[0::2]
        offset = np.zeros(n, dtype=np.int64)
        run_len = np.zeros(n, dtype=np.int64)
        offset[acgt] = np.arange(n, dtype=np.int64)[acgt] - np.repeat(run_starts, run_lens)
        run_len[acgt] = np.repeat(run_lens, run_lens)
        full = acgt & (offset < (run_len // k) * k)  # position lies in a full k-mer
        kmer_start = full & (offset % k == 0)
        single = ~full  # N, or a leftover nucleotide
        starts = np.flatnonzero(kmer_start | single)
        is_kmer = kmer_start[starts]
        ids = np.empty(starts.shape[0], dtype=np.int64)
        if is_kmer.any():
            window = _window_values(codes, k) if n >= k else np.zeros(0, dtype=np.int64)
            ids[is_kmer] = self._code_to_id[window[starts[is_kmer]]]
        ids[~is_kmer] = self._single_to_id[codes[starts[~is_kmer]]]
        ends = starts + np.where(is_kmer, k, 1)
        return Encoding(ids=ids, spans=np.stack([starts, ends], axis=1))

    def n_tokens(self, length: int) -> int:
        return int(length) // self.k + int(length) % self.k

    def to_hf(self):
        return _wordlevel_hf(self, f"[ACGT]{{{self.k}}}|.")


class NucleotideTokenizer(DNATokenizer):
    """One token per nucleotide (A, T, C, G, N)."""

    scheme = "nucleotide"

    def __init__(self, vocab: Sequence[str] | dict[str, int] | None = None):
        super().__init__(vocab if vocab is not None else _default_vocab(SINGLE_NUCLEOTIDES), k=1)
        self._single_to_id = _code_lookup(self.token_to_id, _CODE_LETTERS, "single-nucleotide tokens")

    @property
    def description(self) -> str:
        return "single nucleotides"

    def encode(self, seq: str, *, where: str = "sequence") -> Encoding:
        codes = _acgtn_codes(seq, where)
        starts = np.arange(codes.shape[0], dtype=np.int64)
        return Encoding(ids=self._single_to_id[codes], spans=np.stack([starts, starts + 1], axis=1))

    def n_tokens(self, length: int) -> int:
        return int(length)

    def to_hf(self):
        return _wordlevel_hf(self, ".")


def _wordlevel_hf(tok: DNATokenizer, pattern: str):
    """Fast HF tokenizer: regex pre-tokenizer (isolated matches) + word-level vocabulary + [CLS] x [SEP]."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    t = tok.special_tokens
    core = Tokenizer(models.WordLevel(vocab=dict(tok.token_to_id), unk_token=t["unk"]))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    pre = [t[r] for r in tok.prefix_roles]
    suf = [t[r] for r in tok.suffix_roles]
    core.post_processor = processors.TemplateProcessing(  # the family's framing (tokenizer.frame)
        single=" ".join([*pre, "$A", *suf]),
        pair=" ".join([*pre, "$A", *suf, "$B", *suf]),
        special_tokens=[(t[r], tok.special_id(r)) for r in dict.fromkeys((*tok.prefix_roles, *tok.suffix_roles))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token=t["unk"], sep_token=t["sep"], pad_token=t["pad"],
        cls_token=t["cls"], mask_token=t["mask"], model_max_length=512,
    )


class BPETokenizer(DNATokenizer):
    """Byte-pair encoding over nucleotides (DNABERT-2 style), trained with the ``tokenizers`` library.

    Build with :meth:`train` on ACGT sequences; tokens have variable length; ``spans`` come from the
    tokenizer's character offsets. Input is upper-cased; N is its own token.
    """

    scheme = "bpe"

    def __init__(self, hf_tokenizer):
        from transformers import PreTrainedTokenizerFast

        if not isinstance(hf_tokenizer, PreTrainedTokenizerFast) and hasattr(hf_tokenizer, "encode_batch"):
            hf_tokenizer = _wrap_fast(hf_tokenizer)
        self._hf = hf_tokenizer
        self._core = hf_tokenizer.backend_tokenizer
        super().__init__(dict(self._core.get_vocab(with_added_tokens=True)), k=None)

    @classmethod
    def train(cls, sequences: Iterable[str], vocab_size: int = 4096, *, min_frequency: int = 2, chunk: int = 1000) -> "BPETokenizer":
        """Train on ``sequences`` (cut into ``chunk``-nt pieces, the BPE "words"); deterministic for the same input."""
        from tokenizers import Tokenizer, models, trainers

        vocab_size = check_int_range("bpe_vocab_size", vocab_size, 16, 2**20)
        core = Tokenizer(models.BPE(unk_token="[UNK]"))
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=list("ACGTN"), show_progress=False, max_token_length=32,
        )

        def pieces():
            for s in sequences:
                s = s.upper()
                for i in range(0, len(s), chunk):
                    yield s[i : i + chunk]

        core.train_from_iterator(pieces(), trainer=trainer)
        return cls(_wrap_fast(core))

    @property
    def description(self) -> str:
        return f"BPE ({self.vocab_size} tokens)" if self._model_type != "WordPiece" else f"WordPiece ({self.vocab_size} tokens)"

    @cached_property
    def _model_spec(self) -> dict:
        """The ``model`` section of the tokenizer's JSON (type, continuing_subword_prefix, end_of_word_suffix)."""
        try:
            return json.loads(self._core.to_str()).get("model", {}) or {}
        except Exception:  # a backend that cannot serialise itself: plain tokens
            return {}

    @property
    def _model_type(self) -> str:
        return str(self._model_spec.get("type", "BPE"))

    @cached_property
    def token_nucleotides(self) -> list[str]:
        """Each token's nucleotide text: the token without the model's word markers (WordPiece's ``##``
        continuation prefix, a BPE ``continuing_subword_prefix`` / ``end_of_word_suffix``); "" for special
        tokens (the tokenizer file's added special tokens, and any token that is not a string of ACGTN)."""
        spec = self._model_spec
        prefix = spec.get("continuing_subword_prefix") or ""
        suffix = spec.get("end_of_word_suffix") or ""
        added = {t.content for t in self._core.get_added_tokens_decoder().values() if t.special} \
            if hasattr(self._core, "get_added_tokens_decoder") else set()
        out = []
        for tok in self.vocab:
            text = tok
            if prefix and text.startswith(prefix) and len(text) > len(prefix):
                text = text[len(prefix):]
            if suffix and text.endswith(suffix) and len(text) > len(suffix):
                text = text[: -len(suffix)]
            ok = bool(text) and tok not in added and all(c in "ACGTN" for c in text)
            out.append(text if ok else "")
        return out

    @cached_property
    def is_special(self) -> np.ndarray:
        """(vocab_size,) bool: True for special tokens (word markers such as ``##`` do not make a token special)."""
        return np.array([not t for t in self.token_nucleotides], dtype=bool)

    @cached_property
    def _char_table(self) -> tuple[np.ndarray, np.ndarray]:
        texts = self.token_nucleotides
        width = max(1, max(len(t) for t in texts))
        table = np.zeros((self.vocab_size, width), dtype=np.uint8)
        lengths = np.zeros(self.vocab_size, dtype=np.int64)
        for i, text in enumerate(texts):
            if text:
                table[i, : len(text)] = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
                lengths[i] = len(text)
        return table, lengths

    def encode(self, seq: str, *, where: str = "sequence") -> Encoding:
        codes = _acgtn_codes(seq, where)
        upper = seq.upper() if isinstance(seq, str) else bytes(seq).decode("ascii").upper()
        limit = self._model_spec.get("max_input_chars_per_word") if self._model_type == "WordPiece" else None
        if limit and len(upper) > int(limit):
            raise ParameterError(
                f"{where} has {len(upper)} nt, but this WordPiece tokenizer turns any word longer than {limit} "
                f"characters into a single [UNK]; use windows of at most {limit} nt (the window_length parameter)."
            )
        enc = self._core.encode(upper, add_special_tokens=False)
        if self._model_type == "WordPiece" and self.unk_id in enc.ids:
            raise SequenceAlphabetError(
                f"{where}: this WordPiece tokenizer has no piece for part of the sequence and turns the whole "
                f"{len(upper)}-nt word into [UNK] (typically an N, which its vocabulary lacks as a continuation "
                "piece); split the sequence at N first (genome.acgt_segments / Genome.segments)."
            )
        spans = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        ends = spans[:, 1]
        if ends.size and ends[-1] == len(upper) and (np.diff(ends) > 0).all() and ends[0] > 0:
            # the tokens tile the sequence: a normaliser that rewrites a run (GENA-LM: >= 10 N -> "-") leaves
            # the run's token with the offsets of its last character only; give it the whole run
            spans[:, 0] = np.r_[0, ends[:-1]]
        return Encoding(ids=np.asarray(enc.ids, dtype=np.int64), spans=spans)

    def n_tokens(self, length: int) -> int:
        raise ParameterError("BPE token counts depend on the sequence; encode it instead of asking n_tokens.")

    def to_hf(self):
        return self._hf

    def metadata(self) -> dict:
        meta = super().metadata()
        meta["max_token_length"] = int(self._char_table[1].max())
        return meta


def _wrap_fast(core):
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    vocab = core.get_vocab(with_added_tokens=True)
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
        cls_token="[CLS]", mask_token="[MASK]", model_max_length=512,
    )


# ------------------------------------------------------------------------------------------------
# Construction, detection and loading
# ------------------------------------------------------------------------------------------------
def make_tokenizer(scheme: str, k: int | None = None, *, corpus: Iterable[str] | None = None, vocab_size: int = 4096) -> DNATokenizer:
    """Build a tokenizer by scheme name: overlapping / nonoverlapping (need k), nucleotide, bpe (needs corpus)."""
    if scheme == "overlapping":
        return OverlappingKmerTokenizer(_need_k(scheme, k))
    if scheme == "nonoverlapping":
        return NonOverlappingKmerTokenizer(_need_k(scheme, k))
    if scheme == "nucleotide":
        return NucleotideTokenizer()
    if scheme == "bpe":
        if corpus is None:
            raise ParameterError("scheme='bpe' needs a corpus to train on (e.g. the bundled pre-training FASTA).")
        return BPETokenizer.train(corpus, vocab_size)
    raise ParameterError(f"unknown tokenization scheme {scheme!r}; choose one of {', '.join(SCHEMES)}.")


def _need_k(scheme: str, k) -> int:
    if k is None:
        raise ParameterError(f"scheme={scheme!r} needs k (the k-mer length, 1..{MAX_K}).")
    return k


def detect_tokenizer(vocab: Sequence[str] | dict[str, int]) -> DNATokenizer:
    """Infer the scheme from a vocabulary (token -> id) and return a tokenizer that keeps its ids.

    Only k-mers of one length k and all 4**k present -> overlapping (DNABERT); all 4**k k-mers plus single
    nucleotides -> non-overlapping (Nucleotide Transformer); only single nucleotides -> nucleotide;
    anything else made of nucleotide strings -> BPE is not inferable from a vocabulary alone (load it from
    its tokenizer.json).
    """
    tokens = list(vocab) if not isinstance(vocab, dict) else sorted(vocab, key=vocab.get)
    body = [t for t in tokens if t and all(c in "ACGTN" for c in t)]
    lengths = sorted({len(t) for t in body if "N" not in t})
    kmers = {t for t in body if "N" not in t}
    if lengths == [1] and len(kmers) == 4:
        return NucleotideTokenizer(vocab)
    if len(lengths) == 1 and len(kmers) == 4 ** lengths[0]:
        return OverlappingKmerTokenizer(lengths[0], vocab)
    if len(lengths) == 2 and lengths[0] == 1 and len(kmers) == 4 ** lengths[1] + 4:
        return NonOverlappingKmerTokenizer(lengths[1], vocab)
    raise VocabularyMismatchError(
        f"cannot tell the tokenization from this vocabulary ({len(tokens)} tokens, nucleotide-token lengths "
        f"{lengths[:6]}{'...' if len(lengths) > 6 else ''}): it is neither complete k-mers (DNABERT), k-mers plus "
        "single nucleotides (Nucleotide Transformer) nor single nucleotides. For a BPE model load the folder's "
        "tokenizer.json with load_tokenizer()."
    )


def load_tokenizer(folder: str | Path, *, on_invalid: str = "error") -> DNATokenizer:
    """Load the tokenizer of a model folder from the files it has, in this order:

    1. ``dnalm_tokenizer.json`` (folders this project writes: scheme, k, framing);
    2. ``vocab.txt`` when it is a complete k-mer / nucleotide vocabulary (DNABERT-3..6, Nucleotide Transformer);
    3. ``tokenizer.json`` (BPE or WordPiece, e.g. DNABERT-2, GROVER, GENA-LM): a k-mer vocabulary inside it is
       recognised as such, anything else becomes a :class:`BPETokenizer` over the file's own rules.

    ``on_invalid`` ("error" or "unk") applies to overlapping k-mers: "unk" maps k-mers that hold N (or another
    ambiguity code) to [UNK] instead of refusing the window. Tokenizers defined in a family's custom code
    (HyenaDNA's character tokenizer, ...) are read by that family's model adapter (``adapters``).
    """
    folder = Path(folder)
    if on_invalid not in ("error", "unk"):
        raise ParameterError(f"on_invalid={on_invalid!r}: use 'error' (refuse windows with N) or 'unk' (N-holding k-mers become [UNK]).")
    meta_path = folder / METADATA_FILE
    vocab_txt = folder / "vocab.txt"
    tok_json = folder / "tokenizer.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        scheme = meta.get("scheme")
        if scheme == "bpe":
            tok = BPETokenizer(_load_fast(folder))
        elif scheme in ("overlapping", "nonoverlapping", "nucleotide"):
            vocab = _read_vocab_txt(vocab_txt)
            tok = (OverlappingKmerTokenizer(meta["k"], vocab, on_invalid=on_invalid) if scheme == "overlapping"
                   else NonOverlappingKmerTokenizer(meta["k"], vocab) if scheme == "nonoverlapping"
                   else NucleotideTokenizer(vocab))
        else:
            raise VocabularyMismatchError(f"{meta_path}: unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}.")
        framing = meta.get("framing")
        if framing:
            tok.set_framing(framing.get("prefix", ()), framing.get("suffix", ()))
        return tok
    problem = None
    if vocab_txt.exists():
        tokens = _read_vocab_txt(vocab_txt)
        marked = [t for t in tokens if t and not set(t) <= set("ACGTN") and not _is_bracketed(t)]
        try:
            if marked:  # e.g. WordPiece continuation tokens "##ACG": not a k-mer / nucleotide vocabulary
                raise VocabularyMismatchError(
                    f"{vocab_txt} holds tokens that are not nucleotide strings (e.g. {marked[0]!r}); its "
                    "tokenization rules live in tokenizer.json, which this folder lacks."
                )
            return _with_on_invalid(detect_tokenizer(tokens), on_invalid)
        except VocabularyMismatchError as exc:
            if not tok_json.exists():
                raise
            problem = exc  # e.g. GROVER: a BPE vocabulary in vocab.txt, its rules in tokenizer.json
    if tok_json.exists():
        fast = _load_fast(folder)
        vocab = fast.get_vocab()
        specials = {t.content for t in fast.backend_tokenizer.get_added_tokens_decoder().values() if t.special}
        if all(t and set(t) <= set("ACGTN") for t in vocab if t not in specials):
            # only plain nucleotide strings besides the specials: maybe k-mers / single nucleotides. A vocabulary
            # with word markers (WordPiece "##ACG") or other symbols is read by the file's own rules.
            try:
                return _with_on_invalid(detect_tokenizer(vocab), on_invalid)
            except VocabularyMismatchError:
                pass
        return BPETokenizer(fast)
    raise VocabularyMismatchError(
        f"{folder} holds no tokenizer this package can read (no {METADATA_FILE}, k-mer vocab.txt or tokenizer.json)"
        + (f": {problem}" if problem else "") + "; pass the model folder that was saved with its tokenizer."
    )


def _is_bracketed(token: str) -> bool:
    """Special-token spelling: ``[PAD]``, ``<cls>``, ... ."""
    return len(token) > 2 and ((token[0], token[-1]) in (("[", "]"), ("<", ">")))


def _with_on_invalid(tok: DNATokenizer, on_invalid: str) -> DNATokenizer:
    if isinstance(tok, OverlappingKmerTokenizer) and on_invalid != tok.on_invalid:
        return OverlappingKmerTokenizer(tok.k, tok.vocab, on_invalid=on_invalid)
    return tok


def _read_vocab_txt(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


def _load_fast(folder: Path):
    from transformers import PreTrainedTokenizerFast

    path = folder / "tokenizer.json"
    try:
        return PreTrainedTokenizerFast(tokenizer_file=str(path))
    except Exception as exc:  # the tokenizers library raises a bare Exception for a malformed file
        line = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise VocabularyMismatchError(
            f"{path} is not a readable tokenizer file ({line[:200]}); it is truncated or corrupted. Download the "
            "model folder's tokenizer.json again."
        ) from None


# ------------------------------------------------------------------------------------------------
# Corpus statistics and the overlap arithmetic behind the paper
# ------------------------------------------------------------------------------------------------
def token_counts(tokenizer: DNATokenizer, sequences: Iterable[str]) -> np.ndarray:
    """(vocab_size,) int64: how often each token id occurs when ``sequences`` are tokenized."""
    counts = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    for seq in sequences:
        counts += np.bincount(tokenizer.encode(seq).ids, minlength=tokenizer.vocab_size)
    return counts


def hidden_nucleotides(m: int, k: int) -> int:
    """Nucleotides of m contiguous masked overlapping k-mers that no unmasked neighbour contains: max(0, m-k+1)."""
    m = check_int_range("m", m, 1)
    k = check_int_range("k", k, 1, MAX_K)
    return max(0, m - k + 1)


def revealed_nucleotides(token_masked: np.ndarray, k: int, n_nucleotides: int | None = None) -> np.ndarray:
    """(n_nucleotides,) bool: True where some *unmasked* overlapping k-mer contains the nucleotide.

    ``token_masked`` is a (n_tokens,) bool mask over the tokens of an overlapping-k-mer sequence
    (token i covers nucleotides [i, i+k)). Works for any mask pattern, not only contiguous spans.
    """
    token_masked = np.asarray(token_masked, dtype=bool)
    n_tok = token_masked.shape[0]
    n_nt = n_tok + k - 1 if n_nucleotides is None else int(n_nucleotides)
    delta = np.zeros(n_nt + 1, dtype=np.int64)
    visible = np.flatnonzero(~token_masked)
    np.add.at(delta, visible, 1)
    np.add.at(delta, visible + k, -1)
    return np.cumsum(delta)[:n_nt] > 0


def hidden_span_positions(m: int, k: int) -> np.ndarray:
    """Offsets (from the first masked nucleotide) of the nucleotides hidden by m contiguous masked k-mers.

    With masked tokens a..a+m-1 and unmasked neighbours on both sides, the hidden nucleotides are
    ``[a + k - 1, a + m)``: offsets k-1 .. m-1. Empty for m < k.
    """
    return np.arange(k - 1, m, dtype=np.int64) if m >= k else np.zeros(0, dtype=np.int64)


def overlap_table(ks: Iterable[int] = (4, 5, 6), ms: Iterable[int] | None = None) -> "pandas.DataFrame":
    """Per (k, m): masked nucleotides, nucleotides hidden from the flanks, candidate spans, chance of a guess.

    Columns: k, m, masked_nt (m + k - 1), hidden_nt (max(0, m-k+1)), revealed_nt, candidates (4**hidden_nt),
    chance_span (1 / candidates), plus the same masked nucleotides under non-overlapping tokens for contrast.
    """
    import pandas as pd

    rows = []
    for k in ks:
        for m in (ms if ms is not None else range(1, k + 4)):
            hidden = hidden_nucleotides(m, k)
            masked = m + k - 1
            rows.append(
                dict(k=k, m=m, masked_nt=masked, hidden_nt=hidden, revealed_nt=masked - hidden,
                     candidates=4**hidden, chance_span=4.0**-hidden)
            )
    return pd.DataFrame(rows)


def standard_tokenizers(k: int, corpus: Iterable[str], *, bpe_vocab_size: int = 4096) -> dict[str, DNATokenizer]:
    """The four schemes side by side, keyed by a display label: overlapping k-mers, non-overlapping
    k-mers, single nucleotides, and BPE trained on ``corpus`` (ACGT sequences)."""
    k = check_int_range("k", k, 2, MAX_K, hint="The side-by-side comparison needs k >= 2 (k = 1 is the nucleotide scheme).")
    toks = [OverlappingKmerTokenizer(k), NonOverlappingKmerTokenizer(k), NucleotideTokenizer(),
            BPETokenizer.train(corpus, bpe_vocab_size)]
    return {t.description: t for t in toks}


def vocabulary_usage(tokenizers: dict[str, DNATokenizer], sequences: Sequence[str]):
    """Token counts of each tokenizer over ``sequences`` and a summary table.

    Returns (table, counts): table has one row per tokenizer (scheme, vocabulary without specials, tokens,
    nt per token, used, unused, share of tokens taken by the top 1 % of the vocabulary); counts maps the
    label to (scheme, (n_nonspecial,) int64 counts).
    """
    import pandas as pd

    n_nt = sum(len(s) for s in sequences)
    rows, counts = [], {}
    for label, tok in tokenizers.items():
        c = token_counts(tok, sequences)[~tok.is_special]
        counts[label] = (tok.scheme, c)
        top = np.sort(c)[::-1][: max(1, c.size // 100)].sum()
        rows.append(dict(tokenizer=label, scheme=tok.scheme, vocabulary=int(c.size), tokens=int(c.sum()),
                         nt_per_token=n_nt / c.sum(), used=int((c > 0).sum()), unused=int((c == 0).sum()),
                         top1pct_share=top / c.sum()))
    return pd.DataFrame(rows), counts


def overlap_only_guess(windows: Sequence[str], k: int, ms: Iterable[int], *, guess: str = "A", seed: int = 0):
    """How far reading the unmasked neighbours gets on real windows, per number m of masked k-mers.

    For each window one contiguous span of m overlapping k-mers is masked at a random position away from the
    ends; nucleotides shown by an unmasked neighbour are read off exactly, each hidden one is guessed as
    ``guess`` (e.g. the corpus' most common base). Returns a DataFrame with m, hidden_nt (formula),
    observed_hidden (mean count measured with :func:`revealed_nucleotides`), span_accuracy (whole masked
    span right), hidden_nt_accuracy (share of hidden nucleotides right) and chance_span (1/4^hidden).
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    seqs = [w.upper() for w in windows]
    length = min(len(s) for s in seqs)
    n_tok = length - k + 1
    rows = []
    for m in ms:
        if n_tok < m + 2:
            raise ParameterError(f"windows of {length} nt hold {n_tok} {k}-mers: too few to mask m={m} with a neighbour on each side.")
        starts = rng.integers(1, n_tok - m, size=len(seqs))  # at least one unmasked token each side
        hidden_counts, span_ok, nt_right, nt_total = [], 0, 0, 0
        for seq, a in zip(seqs, starts):
            masked = np.zeros(n_tok, dtype=bool)
            masked[a : a + m] = True
            hidden = np.flatnonzero(~revealed_nucleotides(masked, k, length)[a : a + m + k - 1]) + a
            hidden_counts.append(hidden.size)
            right = sum(seq[i] == guess for i in hidden)
            nt_right += right
            nt_total += hidden.size
            span_ok += right == hidden.size
        rows.append(dict(k=k, m=m, hidden_nt=hidden_nucleotides(m, k), observed_hidden=float(np.mean(hidden_counts)),
                         span_accuracy=span_ok / len(seqs),
                         hidden_nt_accuracy=(nt_right / nt_total) if nt_total else float("nan"),
                         chance_span=4.0 ** -hidden_nucleotides(m, k), windows=len(seqs)))
    return pd.DataFrame(rows)


def overlap_only_position_accuracy(m: int, k: int) -> np.ndarray:
    """(m,) expected top-1 accuracy of each of m contiguous masked k-mers (position 0 = leftmost) for a model
    that knows only the overlap rule and guesses each hidden nucleotide uniformly: 4**-(hidden nucleotides
    inside that k-mer). All ones for m < k."""
    hidden = hidden_span_positions(m, k)
    j = np.arange(check_int_range("m", m, 1))[:, None]
    inside = ((hidden[None, :] >= j) & (hidden[None, :] < j + k)).sum(1)
    return 4.0 ** -inside


def overlap_only_token_accuracy(m: int, k: int) -> float:
    """Expected top-1 accuracy per masked token of a model that knows only the overlap rule and guesses each
    hidden nucleotide uniformly: the mean of :func:`overlap_only_position_accuracy` over the m masked k-mers.
    1 for m < k; the analytic leak bound drawn beside measured accuracies."""
    return float(np.mean(overlap_only_position_accuracy(m, k)))
