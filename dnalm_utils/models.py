"""Load any DNA masked language model through one function, pick the device, build tiny test checkpoints.

``load_model(name_or_path)`` accepts
* a local folder: a DNABERT-3..6-format checkpoint (``BertForMaskedLM`` + ``vocab.txt``), a Nucleotide-
  Transformer-style ``EsmForMaskedLM`` folder, or any model this project saves;
* the name of a model in the project's zoo (a folder under ``models_dir``, default ``artifacts/models``);
* a Hugging Face hub id such as ``zhihan1996/DNA_bert_6`` (needs internet, or the model in the local HF cache).

The tokenization is detected from the vocabulary (never from the shipped tokenizer config, whose
``do_lower_case: true`` silently turns DNABERT's k-mers into ``[UNK]``).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from .adapters import ModelAdapter
from .errors import ModelNotAvailableError, ParameterError, VocabularyMismatchError
from .io import atomic_path
from .tokenization import (
    DNATokenizer,
    OverlappingKmerTokenizer,
    NonOverlappingKmerTokenizer,
    kmer_vocabulary,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_models_dir() -> Path:
    """Where the project's pre-trained zoo lives: $DNALM_MODELS_DIR or <repo>/artifacts/models."""
    return Path(os.environ.get("DNALM_MODELS_DIR", REPO_ROOT / "artifacts" / "models"))


def pick_device(device: str = "auto"):
    """torch.device: "auto" takes CUDA, then Apple MPS, then CPU; otherwise the named device (checked)."""
    import torch

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device={device!r} but CUDA is not available here; use device='auto' or 'cpu'.")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ParameterError(f"device={device!r} but Apple MPS is not available here; use device='auto' or 'cpu'.")
    return dev


def pick_dtype(device, dtype: str = "auto"):
    """torch dtype for weights: "auto" = bfloat16 on a CUDA GPU that supports it, else float32."""
    import torch

    if dtype in (None, "", "auto"):
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise ParameterError(f"dtype={dtype!r}: use 'auto' or one of {', '.join(table)}.")
    return table[dtype]


def autocast(device):
    """Context manager: bf16 autocast on CPU (uses AMX where present) and on CUDA; a no-op elsewhere."""
    import contextlib

    import torch

    if device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported()):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


#: What load_model returns: the model behind the package's one model interface (adapters.ModelAdapter).
LoadedModel = ModelAdapter


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """True if the Hugging Face hub (or $HF_ENDPOINT) answers a TCP connect within ``timeout`` seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_model(name_or_path: str | os.PathLike, *, models_dir: str | os.PathLike | None = None, revision: str | None = None) -> tuple[str, str]:
    """(what to pass to from_pretrained, source) for a local folder, a zoo name or a hub id.

    A hub id is first looked up in the local Hugging Face cache; if absent and the hub cannot be reached,
    ModelNotAvailableError says so at once (instead of transformers' long retry loop).
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path), "local"
    zoo = Path(models_dir) if models_dir else default_models_dir()
    if (zoo / text).is_dir():
        return str(zoo / text), "zoo"
    if path.exists():
        raise ModelNotAvailableError(f"model={text!r} is a file, not a folder; pass the folder that holds config.json.")
    if not _looks_like_hub_id(text):
        available = sorted(p.name for p in zoo.iterdir() if p.is_dir()) if zoo.is_dir() else []
        raise ModelNotAvailableError(
            f"model={text!r} is neither a local folder, a model of the project's zoo in {zoo} "
            f"(available: {', '.join(available) or 'none yet; pre-train them with the 02 notebook'}) nor a hub id "
            "like 'zhihan1996/DNA_bert_6'."
        )
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(text, revision=revision, local_files_only=True), "hub"
    except Exception:
        pass
    if not hub_reachable():
        raise ModelNotAvailableError(
            f"no network: the Hugging Face hub cannot be reached to download {text!r}, and it is not in the local "
            "cache. Pass a local folder instead (download it on a machine with internet, e.g. "
            f"`hf download {text} --local-dir models/{text.split('/')[-1]}`, and copy it here); see README, "
            "'Using a hub model'."
        )
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(text, revision=revision), "hub"
    except Exception as exc:  # the hub answered, but not with this model
        raise ModelNotAvailableError(f"could not download {text!r} from the Hugging Face hub: {exc}") from None


def load_model(
    name_or_path: str | os.PathLike,
    *,
    device: str = "auto",
    dtype: str = "auto",
    head: str | None = None,
    num_labels: int | None = None,
    attn_implementation: str | None = None,
    models_dir: str | os.PathLike | None = None,
    revision: str | None = None,
    eval_mode: bool = True,
    trust_remote_code: bool = False,
    on_invalid: str = "error",
    seed: int = 0,
) -> ModelAdapter:
    """Load a DNA language model behind the package's model interface (:class:`adapters.ModelAdapter`).

    The family is read from config.json (``model_type``, ``architectures``, ``auto_map``; see
    ``adapters.family_for``), the tokenizer from the folder's own files, and every weight is loaded strictly:
    a checkpoint whose tensors do not all fit the architecture is refused with the tensors named (never a
    half-random model). ``adapter.load_report`` says how many tensors were loaded.

    head: None (default) = the family's token head: "mlm" for masked models, "lm" (next-token) for causal ones;
    "mlm", "lm", "base" (encoder only), "classification" (``adapter.classifier(num_labels)`` on the pre-trained weights, head seeded with
    ``seed``). attn_implementation: "eager" to get attention weights (SDPA returns none).
    trust_remote_code: allow the folder's own Python code (``auto_map``) where the package has no
    implementation of the family; without it such a folder is refused with the file named.
    on_invalid: "error" refuses windows with N for overlapping k-mers; "unk" maps N-holding k-mers to [UNK].
    """
    import transformers

    from .adapters import HEADS, LoadOptions, family_for, read_config

    if head is not None and head not in HEADS:
        raise ParameterError(f"head={head!r}: use one of {', '.join(HEADS)} (or None for the family's token head).")
    if on_invalid not in ("error", "unk"):
        raise ParameterError(f"on_invalid={on_invalid!r}: use 'error' or 'unk'.")
    if head == "classification" and (not num_labels or num_labels < 2):
        raise ParameterError("head='classification' needs num_labels >= 2.")
    location, source = resolve_model(name_or_path, models_dir=models_dir, revision=revision)
    folder = Path(location)
    config = read_config(folder)
    problems = verify_model_folder(folder)
    if problems:
        raise ModelNotAvailableError(
            f"model folder {folder} is damaged ({'; '.join(problems[:3])}); delete it and re-create it "
            "(zoo models: re-run the pre-training notebook, which retrains what is missing)."
        )
    family = family_for(config, folder)
    if head is None:
        base_head = "mlm" if family.adapter.objective == "masked" else "lm"
    else:
        base_head = "base" if head == "classification" else head  # the classifier is built on the encoder
    options = LoadOptions(name=Path(str(name_or_path)).name, source=source, head=base_head, num_labels=num_labels,
                          attn_implementation=attn_implementation, trust_remote_code=trust_remote_code,
                          on_invalid=on_invalid, seed=seed)
    transformers.utils.logging.disable_progress_bar()
    lm = family.load(folder, config, options)
    dev = pick_device(device)
    if head == "classification":
        lm = lm.classifier(num_labels, init="pretrained", seed=seed)
    return to_device(lm, dev, pick_dtype(dev, dtype), eval_mode=eval_mode)


def load_models(sources, **options) -> dict:
    """name -> :func:`load_model` (``options`` for every model: device, models_dir, trust_remote_code, ...)
    for ``sources``, a mapping of names to what load_model takes (e.g. ``pretraining.model_sources``)."""
    return {name: load_model(src, **options) for name, src in sources.items()}


def to_device(lm: ModelAdapter, device, dtype, *, eval_mode: bool = True) -> ModelAdapter:
    """Move an adapter's model to ``device`` / ``dtype`` (torch objects) and set eval or training mode."""
    lm.model.to(device=device, dtype=dtype)
    lm.device, lm.dtype = device, dtype
    lm.model.train(not eval_mode)
    return lm


CHECKSUMS = "dnalm_checksums.json"
#: Key of ``CHECKSUMS`` listing the folder's records (model card, ``extra`` and ``files`` entries, subfolders such as
#: training snapshots): checked for damage like every file, but not part of :func:`model_digest`.
RECORDS_KEY = "_records"
#: Files that never shape what a model computes, in any folder (a hub download's card included).
NOT_MODEL_CONTENT = ("README.md", CHECKSUMS)


def save_model(model, tokenizer: DNATokenizer, folder: str | os.PathLike, *, card: str | None = None,
               extra: dict | None = None, files: dict[str, str] | None = None,
               subfolders: dict[str, str | os.PathLike] | None = None) -> Path:
    """Save model + tokenizer (+ README model card, + ``extra`` JSON files, + ``files`` text files, + copies of
    the folders in ``subfolders`` under their names) into ``folder`` atomically, with ``dnalm_checksums.json``
    (sha256 of every file, subfolders included, by relative path) so a damaged copy is detected. The card,
    ``extra``, ``files`` and ``subfolders`` are the folder's records (:data:`RECORDS_KEY`): how it was made
    (wall times, loss curves, snapshots), not what the model computes, so :func:`model_digest` leaves them out."""
    import shutil

    from .io import sha256_file

    import transformers

    transformers.utils.logging.disable_progress_bar()  # no "Writing model shards" bar (worker processes included)
    folder = Path(folder)
    with atomic_path(folder) as tmp:
        if hasattr(model, "save_pretrained"):
            model.save_pretrained(str(tmp))
        else:  # a family's own modules (e.g. a pooled classifier): the weights, shared tensors stored once
            from safetensors.torch import save_model as save_weights

            tmp.mkdir(parents=True, exist_ok=True)
            save_weights(model, str(tmp / "model.safetensors"))
        tokenizer._write_folder(tmp)
        if card:
            (tmp / "README.md").write_text(card)
        for name, obj in (extra or {}).items():
            (tmp / name).write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
        for name, src in (subfolders or {}).items():
            shutil.copytree(src, tmp / name)
        sums = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        sums[RECORDS_KEY] = (["README.md"] if card else []) + sorted([*(extra or {}), *(files or {}), *(subfolders or {})])
        (tmp / CHECKSUMS).write_text(json.dumps(sums, indent=2, sort_keys=True) + "\n")
    return folder


def verify_model_folder(folder: str | os.PathLike) -> list[str]:
    """Problems with a folder written by :func:`save_model` (missing or altered files); [] if intact or if the
    folder has no checksum file (e.g. a hub download)."""
    from .io import sha256_file

    folder = Path(folder)
    path = folder / CHECKSUMS
    if not path.exists():
        return []
    try:
        sums = json.loads(path.read_text())
    except json.JSONDecodeError:
        return [f"{path} is not valid JSON"]
    problems = []
    for name, digest in sums.items():
        if name == RECORDS_KEY:
            continue
        f = folder / name
        if not f.is_file():
            problems.append(f"{f} is missing")
        elif sha256_file(f) != digest:
            problems.append(f"{f} does not match its recorded sha256")
    return problems


def model_digest(folder: str | os.PathLike) -> str:
    """sha256 naming a model folder's content: every file's relative path and bytes (hidden entries skipped),
    so two folders with the same weights, config and tokenizer get the same digest wherever they live. The
    folder's records (:data:`NOT_MODEL_CONTENT`, and what :func:`save_model` listed under :data:`RECORDS_KEY`:
    manifest, loss curve, snapshots) are left out, so a model retrained to the same weights keeps its digest
    and the caches keyed on it (fine-tuning runs, frozen features)."""
    from .io import sha256_file

    folder = Path(folder)
    skip = set(NOT_MODEL_CONTENT)
    try:
        skip |= set(json.loads((folder / CHECKSUMS).read_text()).get(RECORDS_KEY, []))
    except (OSError, ValueError, AttributeError):
        pass  # no checksum file (a hub download) or an unreadable one: only the fixed names are left out
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder)
        if rel.parts[0] in skip:
            continue
        if f.is_file() and not any(part.startswith(".") for part in rel.parts):
            h.update(f"{rel.as_posix()}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# Tiny random checkpoints in the exact on-disk formats of the real models (for tests and smoke runs)
# ------------------------------------------------------------------------------------------------
def make_tiny_dnabert(
    folder: str | os.PathLike,
    k: int = 6,
    *,
    layers: int = 2,
    hidden: int = 32,
    heads: int = 2,
    intermediate: int = 64,
    max_positions: int = 128,
    seed: int = 0,
    legacy_bin: bool = False,
) -> Path:
    """Write a random DNABERT-k checkpoint exactly as the hub ships it: config.json (BertForMaskedLM),
    vocab.txt (5 specials + k-mers in ATCG order), tokenizer_config.json with DNABERT's ``do_lower_case:
    true``, special_tokens_map.json, and model.safetensors (or legacy pytorch_model.bin)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + kmer_vocabulary(k)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=intermediate, max_position_embeddings=max_positions, pad_token_id=0,
        architectures=["BertForMaskedLM"],
    )
    torch.manual_seed(seed)
    model = BertForMaskedLM(config)
    folder = Path(folder)
    with atomic_path(folder) as tmp:
        if legacy_bin:  # DNABERT's original release format
            tmp.mkdir()
            config.save_pretrained(str(tmp))
            torch.save(model.state_dict(), tmp / "pytorch_model.bin")
        else:
            model.save_pretrained(str(tmp))
        (tmp / "vocab.txt").write_text("\n".join(vocab) + "\n")
        (tmp / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}) + "\n")
        (tmp / "special_tokens_map.json").write_text(json.dumps(
            {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}
        ) + "\n")
    return folder


def make_tiny_nt(
    folder: str | os.PathLike, k: int = 6, *, layers: int = 2, hidden: int = 32, heads: int = 2,
    intermediate: int = 64, max_positions: int = 128, seed: int = 0, version: int = 1,
) -> Path:
    """A random Nucleotide Transformer checkpoint in NT's published layout (``families.esm.make_replica``):
    ``max_positions`` tokens per sequence (v1: the position table has two more rows, as NT's has)."""
    from .families.esm import make_replica

    return make_replica(folder, version=version, k=k, layers=layers, hidden=hidden, heads=heads,
                        intermediate=intermediate, seed=seed, max_positions=max_positions + 2)


__all__ = [
    "LoadedModel", "ModelAdapter", "load_model", "load_models", "to_device", "save_model", "resolve_model", "pick_device", "pick_dtype", "autocast",
    "hub_reachable", "make_tiny_dnabert", "make_tiny_nt", "default_models_dir",
    "OverlappingKmerTokenizer", "NonOverlappingKmerTokenizer", "VocabularyMismatchError",
]
