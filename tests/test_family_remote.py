"""Remote-code family: folders whose config.json has an auto_map the package does not implement itself."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch

from dnalm_utils import models as M
from dnalm_utils.adapters import NotApplicable, family_for
from dnalm_utils.errors import DnalmInputError, ModelNotAvailableError
from dnalm_utils.tokenization import make_tokenizer

CONFIG_PY = '''
from transformers import PretrainedConfig


class TinyDNAConfig(PretrainedConfig):
    model_type = "tinydna_test"

    def __init__(self, vocab_size=10, hidden_size=16, num_hidden_layers=2, **kw):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        super().__init__(**kw)
'''

MODELING_PY = '''
{extra_import}
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput

from .configuration_tinydna import TinyDNAConfig


class TinyDNAModel(PreTrainedModel):
    config_class = TinyDNAConfig
    base_model_prefix = "backbone"

    def __init__(self, config):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([nn.Linear(config.hidden_size, config.hidden_size)
                                     for _ in range(config.num_hidden_layers)])
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, output_hidden_states=False, return_dict=True, **kw):
        h = self.embed(input_ids)
        states = [h]
        for lin in self.layers:
            h = torch.tanh(lin(h)) + h
            states.append(h)
        return BaseModelOutput(last_hidden_state=h, hidden_states=tuple(states) if output_hidden_states else None)


class TinyDNAForMaskedLM(PreTrainedModel):
    config_class = TinyDNAConfig

    def __init__(self, config):
        super().__init__(config)
        self.backbone = TinyDNAModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, output_hidden_states=False, return_dict=True, **kw):
        out = self.backbone(input_ids, attention_mask, output_hidden_states=output_hidden_states)
        return MaskedLMOutput(logits=self.lm_head(out.last_hidden_state), hidden_states=out.hidden_states)
'''

SEQ = "ACGTTGCAAGTCCGATAGGCTTACGATCG"


def _write(folder, *, extra_import="", mlm=True, drop=None):
    """A folder with custom code (configuration + modeling file), a nucleotide tokenizer and random weights."""
    import importlib.util
    import sys

    folder.mkdir(parents=True)
    tok = make_tokenizer("nucleotide")
    tok.save_pretrained(folder)
    (folder / "configuration_tinydna.py").write_text(CONFIG_PY)
    (folder / "modeling_tinydna.py").write_text(MODELING_PY.format(extra_import=extra_import))
    auto_map = {"AutoConfig": "configuration_tinydna.TinyDNAConfig", "AutoModel": "modeling_tinydna.TinyDNAModel"}
    if mlm:
        auto_map["AutoModelForMaskedLM"] = "modeling_tinydna.TinyDNAForMaskedLM"
    cfg = {"architectures": ["TinyDNAForMaskedLM" if mlm else "TinyDNAModel"], "auto_map": auto_map,
           "model_type": "tinydna_test", "vocab_size": tok.vocab_size, "hidden_size": 16, "num_hidden_layers": 2}
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    # build the weights with the same code, imported as a package outside transformers (no einops needed)
    pkg = f"tinydna_pkg_{folder.name}"
    src = folder.parent / pkg
    src.mkdir()
    (src / "__init__.py").write_text("")
    (src / "configuration_tinydna.py").write_text(CONFIG_PY)
    (src / "modeling_tinydna.py").write_text(MODELING_PY.format(extra_import=""))
    sys.path.insert(0, str(folder.parent))
    try:
        mod = __import__(f"{pkg}.modeling_tinydna", fromlist=["x"])
        conf = __import__(f"{pkg}.configuration_tinydna", fromlist=["x"])
        torch.manual_seed(0)
        model = (mod.TinyDNAForMaskedLM if mlm else mod.TinyDNAModel)(
            conf.TinyDNAConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=2))
    finally:
        sys.path.remove(str(folder.parent))
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != drop}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder, model


def test_remote_family_is_the_fallback_for_auto_map(tmp_path):
    folder, _ = _write(tmp_path / f"tiny_{tmp_path.name}")
    cfg = json.loads((folder / "config.json").read_text())
    assert family_for(cfg, folder).name == "remote"


def test_refused_without_trust_remote_code_naming_the_files(tmp_path):
    folder, _ = _write(tmp_path / f"tiny_{tmp_path.name}")
    with pytest.raises(ModelNotAvailableError) as err:
        M.load_model(folder, device="cpu")
    msg = str(err.value)
    assert "configuration_tinydna.py" in msg and "modeling_tinydna.py" in msg
    assert "trust_remote_code=True" in msg and "-p trust_remote_code true" in msg


def test_loads_with_trust_remote_code_hidden_states_and_masked_logprobs(tmp_path):
    folder, ref = _write(tmp_path / f"tiny_{tmp_path.name}")
    lm = M.load_model(folder, device="cpu", trust_remote_code=True)
    assert lm.family == "remote" and lm.n_layers == 2 and lm.hidden_size == 16
    assert lm.load_report.loaded == lm.load_report.checkpoint_tensors == len(ref.state_dict())
    enc = lm.tokenizer.encode(SEQ)
    ids, att = lm.frame([enc.ids])
    out = lm.encode(torch.from_numpy(ids), torch.from_numpy(att), hidden_states=True)
    assert len(out.hidden_states) == 3
    ref.eval()
    with torch.no_grad():
        expect = ref(torch.from_numpy(ids), output_hidden_states=True)
    assert torch.allclose(out.last_hidden_state, expect.hidden_states[-1], atol=1e-6)
    logp = lm.masked_logprobs(ids, att, [np.array([1, 2])], batch_size=4, amp=False)[0]
    assert logp.shape == (2, lm.tokenizer.vocab_size)
    assert np.allclose(np.exp(logp).sum(1), 1, atol=1e-5)
    with torch.no_grad():
        ref_logits = expect.logits[0, [1, 2]].clone()
    ref_logits[:, torch.from_numpy(lm.tokenizer.is_special)] = float("-inf")
    assert np.allclose(logp, torch.log_softmax(ref_logits, -1).numpy(), atol=1e-5)
    for cap in ("attention", "classifier", "layer_readout", "input_embeddings", "next_token_logprobs"):
        assert not lm.can(cap)
        with pytest.raises(NotApplicable, match="its own code"):
            lm.require(cap, "a probe")


def test_base_auto_model_has_no_masked_predictions(tmp_path):
    folder, _ = _write(tmp_path / f"tiny_{tmp_path.name}", mlm=False)
    lm = M.load_model(folder, device="cpu", trust_remote_code=True)
    assert lm.can("hidden_states") and not lm.can("masked_logprobs")
    with pytest.raises(NotApplicable, match="no masked-language-model head"):
        lm.require("masked_logprobs", "masked-token prediction")


def test_missing_package_is_named_with_pip_install(tmp_path):
    folder, _ = _write(tmp_path / f"tiny_{tmp_path.name}", extra_import="import einops  # noqa: F401")
    with pytest.raises(ModelNotAvailableError) as err:
        M.load_model(folder, device="cpu", trust_remote_code=True)
    assert "'einops'" in str(err.value) and "pip install einops" in str(err.value)


def test_partial_checkpoint_is_refused(tmp_path):
    folder, _ = _write(tmp_path / f"tiny_{tmp_path.name}", drop="backbone.layers.1.weight")
    with pytest.raises(ModelNotAvailableError, match=r"backbone\.layers\.1\.weight"):
        M.load_model(folder, device="cpu", trust_remote_code=True)


def test_missing_code_file_is_named(tmp_path):
    folder, _ = _write(tmp_path / f"tiny_{tmp_path.name}")
    (folder / "modeling_tinydna.py").unlink()
    with pytest.raises(DnalmInputError, match="modeling_tinydna.py"):
        M.load_model(folder, device="cpu", trust_remote_code=True)
