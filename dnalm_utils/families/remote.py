"""Any other model folder with its own Python code (``auto_map`` in config.json): loaded through transformers'
Auto classes, and only when the user passes ``trust_remote_code=True``.

This is the lowest-priority family: it takes a config with ``auto_map`` that no family of the package implements
itself (GENA-LM, DNABERT-2, ... are implemented here and never run their folder's code). Without
``trust_remote_code`` the folder is refused with the files that ask to run code named. With it, the model comes
from ``AutoModelForMaskedLM`` (head="mlm", when the auto_map has it), ``AutoModelForCausalLM`` (head="lm") or
``AutoModel``, loaded with ``output_loading_info=True`` and refused when tensors outside the task head are
missing, unexpected or of another shape (:func:`adapters.check_load_report`). The package cannot know what custom
code computes, so such an adapter offers hidden states (``output_hidden_states=True``) and, for an
``...ForMaskedLM`` class, masked-token log-probabilities from the model's own logits; everything else is "not
applicable" with the reason.
"""

from __future__ import annotations

import re
from pathlib import Path


from ..adapters import (
    EncoderOutput,
    LoadOptions,
    LoadReport,
    ModelAdapter,
    NotApplicable,
    auto_map_files,
    check_load_report,
    read_state_dict,
    register,
)
from ..errors import ModelNotAvailableError, ParameterError

IGNORABLE = (r"\.position_ids$", r"(^|\.)num_batches_tracked$")
HEADS = {
    "mlm": (r"(^|\.)pooler\.", r"seq_relationship\."),
    "lm": (r"(^|\.)pooler\.",),
    "base": (r"(^|\.)pooler\.", r"^cls\.", r"^lm_head\.", r"(^|\.)(mlm_head|lm_head|head|decoder)\."),
}
_NOT_CUSTOM = "the model runs its own code (trust_remote_code), whose internals the package cannot inspect"


class RemoteCodeAdapter(ModelAdapter):
    """A model whose folder brings its own code: hidden states, and masked log-probabilities when loaded through
    an ``...ForMaskedLM`` class; nothing else."""

    family = "remote"
    objective = "masked"
    positions = "none"

    def __init__(self, *args, n_layers: int, hidden_size: int, has_mlm: bool, auto_class: str, **kw):
        super().__init__(*args, **kw)
        self._n_layers, self._hidden = n_layers, hidden_size
        self.auto_class = auto_class
        self.capabilities = frozenset({"hidden_states"} | ({"masked_logprobs"} if has_mlm else set()))
        reasons = {
            "layer_readout": f"{_NOT_CUSTOM}, so its vocabulary head cannot be applied to intermediate layers",
            "attention": f"{_NOT_CUSTOM}, so attention weights are not read from it",
            "classifier": f"{_NOT_CUSTOM}; fine-tuning is offered for the families the package implements",
            "input_embeddings": f"{_NOT_CUSTOM}, so its token-embedding table is not read",
            "next_token_logprobs": f"{_NOT_CUSTOM}; next-token prediction is offered for the causal families the "
                                   "package implements",
        }
        if not has_mlm:
            reasons["masked_logprobs"] = (f"it was loaded through {auto_class}, which has no masked-language-model "
                                          "head (its auto_map names no AutoModelForMaskedLM, or head != 'mlm')")
        self.missing_reasons = reasons

    def why_not(self, capability: str) -> str:
        if capability in self.missing_reasons:
            return self.missing_reasons[capability]
        return super().why_not(capability)

    @property
    def n_layers(self) -> int:
        return self._n_layers

    @property
    def hidden_size(self) -> int:
        return self._hidden

    def _forward(self, ids, att):
        return self.model(input_ids=ids, attention_mask=att, output_hidden_states=True, return_dict=True)

    def _encoder(self, ids, att, *, hidden_states, attentions):
        out = self._forward(ids, att)
        states = getattr(out, "hidden_states", None)
        if states is None:
            raise ParameterError(f"{self.name}'s own code returned no hidden states (output_hidden_states=True was "
                                 "ignored); its representations cannot be read.")
        last = getattr(out, "last_hidden_state", None)
        return EncoderOutput(states[-1] if last is None else last, tuple(states) if hidden_states else None, None)

    def token_logits(self, h, *, layer=None):
        raise NotApplicable(f"token predictions from hidden states are not applicable to {self.name}: "
                            f"{self.missing_reasons['layer_readout']}.")

    def _logits_at(self, ids, att, rows, cols):
        """Logits at the asked positions from the model's own forward (its head cannot be run on its own)."""
        return self.model(input_ids=ids, attention_mask=att, return_dict=True).logits[rows, cols]


def matches(config: dict, folder: Path) -> bool:
    return bool(config.get("auto_map"))


def _auto_class(config: dict, head: str) -> str:
    auto_map = config.get("auto_map") or {}
    wanted = {"mlm": "AutoModelForMaskedLM", "lm": "AutoModelForCausalLM"}.get(head)
    if wanted and wanted in auto_map:
        return wanted
    if "AutoModel" in auto_map:
        return "AutoModel"
    if wanted is None and auto_map:
        return next(k for k in auto_map if k.startswith("AutoModel")) if any(k.startswith("AutoModel") for k in auto_map) else "AutoModel"
    return wanted or "AutoModel"


def _missing_package(exc: BaseException) -> str | None:
    name = getattr(exc, "name", None)
    if name:
        return name.split(".")[0]
    m = re.search(r"not found in your environment: ([\w\-., ]+?)\.( Run|$)", str(exc))
    if m:
        return m.group(1).split(",")[0].strip()
    m = re.search(r"No module named '([\w\-]+)", str(exc))
    return m.group(1) if m else None


def _count_layers(config, out_states) -> int:
    for key in ("num_hidden_layers", "n_layer", "num_layers", "n_layers"):
        v = getattr(config, key, None)
        if isinstance(v, int) and v > 0 and (out_states is None or len(out_states) == v + 1):
            return v
    return len(out_states) - 1 if out_states is not None else 0


def load(folder: Path, config: dict, options: LoadOptions) -> RemoteCodeAdapter:
    import torch
    import transformers

    from ..tokenization import load_tokenizer

    files = auto_map_files(config)
    if not options.trust_remote_code:
        raise ModelNotAvailableError(
            f"{folder} asks to run its own Python code ({', '.join(files) or 'auto_map in config.json'}), and this "
            "package has no implementation of its family. If you trust that code, pass trust_remote_code=True to "
            "models.load_model (or `-p trust_remote_code true` to a notebook); only hidden states (and masked-token "
            "predictions for a masked-LM class) are then available. See README, 'Supported models'."
        )
    absent = [f for f in files if "--" not in f and not (folder / f).is_file()]
    if absent:
        raise ModelNotAvailableError(
            f"{folder}/config.json names custom code in {', '.join(absent)}, but the folder lacks "
            f"{'it' if len(absent) == 1 else 'them'}; download the whole model folder again."
        )
    state = read_state_dict(folder)  # a clear error for missing / truncated weights before any code runs
    n_ckpt = len(state)
    del state
    tokenizer = load_tokenizer(folder, on_invalid=options.on_invalid)
    auto_class = _auto_class(config, options.head)
    cls = getattr(transformers, auto_class)
    kwargs = {}
    if options.attn_implementation:
        kwargs["attn_implementation"] = options.attn_implementation
    transformers.set_seed(options.seed)
    try:
        model, info = cls.from_pretrained(str(folder), trust_remote_code=True, output_loading_info=True,
                                          ignore_mismatched_sizes=True, dtype=torch.float32, **kwargs)
    except ImportError as exc:  # includes ModuleNotFoundError
        pkg = _missing_package(exc)
        if pkg:
            raise ModelNotAvailableError(
                f"{folder}'s own code ({', '.join(files)}) imports the package {pkg!r}, which is not installed. "
                f"Install it with `pip install {pkg}` (only if you trust that code) and load the model again."
            ) from None
        raise ModelNotAvailableError(f"{folder}'s own code ({', '.join(files)}) could not be imported: "
                                     f"{str(exc).splitlines()[0][:300]}") from None
    except (OSError, ValueError, RuntimeError, AttributeError, TypeError, KeyError) as exc:
        raise ModelNotAvailableError(
            f"{folder}'s own code ({', '.join(files)}) failed while loading the model with {auto_class}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        ) from None
    mismatched = [(m[0], tuple(m[1]), tuple(m[2])) if isinstance(m, (tuple, list)) and len(m) == 3 else (str(m), (), ())
                  for m in (info.get("mismatched_keys") or [])]
    report = LoadReport(n_ckpt, len(model.state_dict()), sorted(info.get("missing_keys") or []),
                        sorted(info.get("unexpected_keys") or []), mismatched)
    check_load_report(report, folder=folder, head_patterns=HEADS.get(options.head, ()), ignorable_patterns=IGNORABLE)
    model = model.to(torch.float32).eval()
    has_mlm = options.head == "mlm" and auto_class == "AutoModelForMaskedLM"
    with torch.no_grad():  # count layers from one tiny forward when the config does not say
        probe = None
        if not any(isinstance(getattr(model.config, k, None), int)
                   for k in ("num_hidden_layers", "n_layer", "num_layers", "n_layers")):
            ids = torch.full((1, 4), int(tokenizer.cls_id))
            probe = getattr(model(input_ids=ids, output_hidden_states=True, return_dict=True), "hidden_states", None)
    n_layers = _count_layers(model.config, probe)
    hidden = int(getattr(model.config, "hidden_size", 0) or getattr(model.config, "d_model", 0) or 0)
    head = options.head if options.head in ("mlm", "base", "lm") else "base"
    return RemoteCodeAdapter(model, tokenizer, name=options.name, source=options.source, path=folder,
                             device=torch.device("cpu"), dtype=torch.float32, head=head, config=model.config,
                             load_report=report, n_layers=n_layers, hidden_size=hidden, has_mlm=has_mlm,
                             auto_class=auto_class)


register("remote", RemoteCodeAdapter, matches, load, priority=-100)

__all__ = ["RemoteCodeAdapter", "matches", "load"]
