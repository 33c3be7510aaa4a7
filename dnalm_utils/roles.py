"""What part a model plays in a comparison, read from its metadata, never from its name.

The chapters' prose groups models by role: tokenization family and k (from the tokenizer), origin ("zoo" when
the folder carries a pre-training manifest written by :mod:`dnalm_utils.pretraining`, else "published"), the
recipe facts a zoo manifest records (embedding initialisation, layers, width, steps, nucleotides seen), and
whether a row is a random-initialised control (``init`` in the fine-tuning tables). A model copied under
another name keeps its role.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

#: File a zoo model folder carries (pretraining.MANIFEST; read here so roles need not import the trainer).
ZOO_MANIFEST = "pretrain_manifest.json"

#: Plural noun of each tokenization family, for prose.
SCHEME_NOUNS = {
    "overlapping": "overlapping k-mer",
    "nonoverlapping": "non-overlapping k-mer",
    "nucleotide": "single-nucleotide",
    "bpe": "BPE",
    "character": "single-nucleotide",
}

ROLE_COLUMNS = ("model", "scheme", "k", "origin", "family", "objective", "embedding_init", "layers", "hidden",
                "steps", "nucleotides_seen", "label")


def zoo_recipe(folder: str | os.PathLike | None) -> dict | None:
    """The pre-training recipe (config dict) recorded in a zoo model folder, or None for any other folder."""
    if folder is None:
        return None
    path = Path(folder) / ZOO_MANIFEST
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    cfg = meta.get("config")
    return {**cfg, "nucleotides_seen": meta.get("nucleotides_seen")} if isinstance(cfg, dict) else None


def role_label(scheme: str, k, embedding_init: str | None = None, origin: str = "zoo") -> str:
    """Short prose label: "overlapping 6-mers", "single nucleotides", "BPE", plus "(random embedding init)" for a
    zoo model that starts from random embeddings when the others do not."""
    if scheme == "overlapping":
        base = f"overlapping {k}-mers"
    elif scheme == "nonoverlapping":
        base = f"non-overlapping {k}-mers"
    elif scheme in ("nucleotide", "character"):
        base = "single nucleotides"
    elif scheme == "bpe":
        base = "BPE"
    else:
        base = str(scheme)
    if origin == "zoo" and embedding_init == "random":
        base += ", DNABERT's random embedding init"
    elif origin == "published":
        base += ", published"
    return base


def model_role(adapter) -> dict:
    """One row of :data:`ROLE_COLUMNS` for a loaded model (a :class:`dnalm_utils.adapters.ModelAdapter`)."""
    tok = adapter.tokenizer
    recipe = zoo_recipe(getattr(adapter, "path", None))
    origin = "zoo" if recipe else "published"
    k = getattr(tok, "k", None) if tok.scheme in ("overlapping", "nonoverlapping") else None
    init = recipe.get("embedding_init") if recipe else None
    return {
        "model": adapter.name, "scheme": tok.scheme, "k": k, "origin": origin, "family": adapter.family,
        "objective": adapter.objective, "embedding_init": init,
        "layers": adapter.n_layers, "hidden": adapter.hidden_size,
        "steps": recipe.get("steps") if recipe else None,
        "nucleotides_seen": recipe.get("nucleotides_seen") if recipe else None,
        "label": role_label(tok.scheme, k, init, origin),
    }


def model_roles(models: Mapping[str, object]):
    """DataFrame of :func:`model_role` rows, one per model, in the given order."""
    import pandas as pd

    rows = [{**model_role(lm), "model": name} for name, lm in models.items()]
    return pd.DataFrame(rows, columns=list(ROLE_COLUMNS))


def majority_init(roles) -> str | None:
    """The embedding initialisation most zoo models share (None without zoo models)."""
    zoo = roles[roles.origin == "zoo"].embedding_init.dropna()
    return str(zoo.mode().iloc[0]) if len(zoo) else None


def copy_candidates(roles) -> list[str]:
    """Models whose masked-token skill the overlap rule could explain: overlapping k-mer tokenizers with a masked
    objective."""
    sel = roles[(roles.scheme == "overlapping") & (roles.objective == "masked")]
    return sel.model.tolist()


def recipe_controls(roles) -> list[str]:
    """Zoo models whose embedding initialisation differs from the zoo's majority (e.g. DNABERT's random init
    among letter-sum initialised models): reported apart as recipe controls."""
    common = majority_init(roles)
    if common is None:
        return []
    sel = roles[(roles.origin == "zoo") & roles.embedding_init.notna() & (roles.embedding_init != common)]
    return sel.model.tolist()
