"""The model families the package knows; importing this package registers each one with ``adapters``.

One module per family: ``bert`` (DNABERT-3..6, the project's zoo, GROVER: Hugging Face BERT),
``esm`` (Nucleotide Transformer v1 and v2), ``mosaicbert`` (DNABERT-2, DNABERT-S), ``gena`` (GENA-LM),
``hyena`` (HyenaDNA), ``caduceus`` (Caduceus), ``remote`` (any other folder with custom code, only with
``trust_remote_code=True``).
"""

import importlib

for _name in ("bert", "esm", "mosaicbert", "gena", "hyena", "caduceus", "remote"):
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _exc:  # a family module not written yet (development) -- never a dependency
        if _exc.name != f"{__name__}.{_name}":
            raise
