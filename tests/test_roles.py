"""Roles come from metadata: a zoo folder's manifest, the tokenizer; never from the model's name."""

import json
import shutil
from types import SimpleNamespace

from dnalm_utils import roles


def _adapter(name, path, scheme="overlapping", k=6):
    tok = SimpleNamespace(scheme=scheme, k=k)
    return SimpleNamespace(name=name, path=path, tokenizer=tok, family="bert", objective="masked", n_layers=2,
                           hidden_size=128)


def _zoo_folder(tmp_path, name, init):
    folder = tmp_path / name
    folder.mkdir()
    (folder / roles.ZOO_MANIFEST).write_text(json.dumps(
        {"config": {"embedding_init": init, "steps": 2000, "layers": 2}, "nucleotides_seen": 8_192_000}))
    return folder


def test_zoo_roles_survive_renaming_and_published_folders_are_published(tmp_path):
    letters = _zoo_folder(tmp_path, "overlap6", "nucleotide_sum")
    dnabert = _zoo_folder(tmp_path, "anything", "random")
    renamed = tmp_path / "my_copy"
    shutil.copytree(letters, renamed)
    published = tmp_path / "hub_model"
    published.mkdir()
    table = roles.model_roles({
        "a": _adapter("a", letters), "b": _adapter("b", dnabert), "c": _adapter("c", renamed),
        "d": _adapter("d", published), "e": _adapter("e", None, scheme="bpe", k=None),
    })
    r = table.set_index("model")
    assert r.origin.to_dict() == {"a": "zoo", "b": "zoo", "c": "zoo", "d": "published", "e": "published"}
    assert r.loc["c"].drop("model", errors="ignore").equals(r.loc["a"].drop("model", errors="ignore"))
    assert r.loc["a", "label"] == "overlapping 6-mers" and "random embedding init" in r.loc["b", "label"]
    assert r.loc["e", "label"] == "BPE, published" and r.loc["a", "nucleotides_seen"] == 8_192_000
    assert roles.recipe_controls(table) == ["b"]
    assert roles.copy_candidates(table) == ["a", "b", "c", "d"]


def test_a_corrupt_manifest_is_not_a_zoo_recipe(tmp_path):
    (tmp_path / roles.ZOO_MANIFEST).write_text("{not json")
    assert roles.zoo_recipe(tmp_path) is None and roles.zoo_recipe(None) is None
