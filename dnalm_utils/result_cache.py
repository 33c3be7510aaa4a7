"""Cached analysis results: the value of a package function, reused when its inputs and code are unchanged.

A chapter's heavy analyses (the hidden-nucleotide verdicts, the n-gram baselines, the dependency maps, ...) are
pure functions of models, windows and parameters. :class:`Memo` calls such a function through the package's one
cache rule (``cache``), so that re-executing a chapter whose page changed (a figure, a sentence, a parameter of
another cell) does not recompute them:

    memo = result_cache.Memo("artifacts/analysis_results")
    items = memo(masking.hidden_nucleotide_items, loaded, windows, blocks, counts=counts, prior=prior)

**Key** (``cache.make_key("analysis-result", ...)``): the function's module and name; a :func:`fingerprint` of
every argument except those that only say how or where to compute (:data:`NOT_IN_KEY`: ``executor``,
``progress``, ``cache_dir``, ``log``); the digest of the bundled data files (a function called with an empty
``fasta`` reads them); the device type; the library versions; and the code digest of the function's module and
every package module it imports, directly or not (``cache.import_closure``). So a change to what any of that
code does recomputes the value, while a docstring, a comment, a figure (``plotting`` is imported by no analysis
module) or a notebook cell does not. A call that passes an argument of :data:`WRITES_FILES` (``keep_models_dir``)
writes files of its own, and one told to go without its inner cache (``cache_dir=None``: ``-p run_cache none``
retrains every run), is always computed.

**Fingerprints** are built from what an argument holds, never from its ``id`` or its address: numbers and
strings as they are (long ones as their sha256; a string or path that names an existing file or folder by the
sha256 of its content), sequences and mappings element by element, arrays, tensors and tables by the sha256 of
their bytes with their shape and dtype, a torch module by its class, mode, config and every tensor of its state
dict, a package tokenizer by what defines it (class, ``metadata()``, vocabulary, plain settings, the BPE model's
JSON; not the lookup tables it builds on use), a package function by its name, code digest and closure, and any
other object by its class and attributes (or ``__getstate__``). A class can define ``cache_fingerprint()`` to
name what determines its results instead (``ngram.KmerCounts``: the sequence and the longest k, not its lazily
built tables). An object that cannot be fingerprinted (an open file, a lambda from a notebook) raises
ParameterError naming where it sits; it is never keyed by accident.

**Entry**: ``<cache_dir>/analysis-result-<key>.entry``, the pickled value behind the ``# {header}`` line,
written atomically; an entry that is absent, altered, truncated or does not unpickle is recomputed and
overwritten, never used.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import json
import os
import pickle
import sys
import types
from pathlib import Path, PurePath
from typing import Any, Callable

import numpy as np

from .errors import ParameterError

#: Cache kind of analysis results (``cache.DEPENDS_ON``).
KIND = "analysis-result"
#: Arguments that say how or where to compute, not what: left out of the key (a cache folder is not an input).
NOT_IN_KEY = frozenset({"executor", "progress", "cache_dir", "log"})
#: Arguments that name where a call writes files of its own: a call that passes one is computed, never cached.
WRITES_FILES = frozenset({"keep_models_dir"})
#: An inner cache the call is told to go without (``cache_dir=None``, e.g. ``-p run_cache none`` to retrain every
#: run) means "compute": such a call is not read from this cache either.
INNER_CACHE = "cache_dir"
#: Strings longer than this, and sequences or mappings with more items, are fingerprinted by their sha256.
_INLINE = 64


def _sha(data: bytes) -> str:
    from .io import sha256_bytes

    return sha256_bytes(data)


def _digest_json(value) -> str:
    return _sha(json.dumps(value, sort_keys=True, allow_nan=True).encode("utf-8"))


def _qualname(obj) -> str:
    t = obj if isinstance(obj, type) else type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def _code_modules(fn) -> tuple[str, ...]:
    """The package modules whose code keys a package function: its module and everything it imports."""
    from . import cache

    module = fn.__module__.split(".", 1)[1] if "." in fn.__module__ else fn.__module__
    return cache.import_closure([module])


def _package_function_digest(fn) -> str:
    """Code digest of a package function's module and everything it imports."""
    from . import cache

    return cache.code_digest(KIND, modules=_code_modules(fn))


def _array(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a)
    if a.dtype == object:
        return {"object_array": list(a.shape), "items": fingerprint(a.ravel().tolist())}
    return {"array": _sha(a.view(np.uint8).tobytes() if a.size else b""), "dtype": a.dtype.str, "shape": list(a.shape)}


def _tensor(t) -> dict:
    import torch

    t = t.detach().cpu().contiguous()
    raw = t.view(torch.uint8) if t.dtype in (torch.bfloat16, torch.float16) or t.is_floating_point() else t
    data = raw.numpy().tobytes() if t.numel() else b""
    return {"tensor": _sha(data), "dtype": str(t.dtype), "shape": list(t.shape)}


def _module(m) -> dict:
    state = m.state_dict()
    config = getattr(m, "config", None)
    return {"module": _qualname(m), "training": bool(m.training),
            "state": _digest_json({name: _tensor(t) for name, t in state.items()}),
            "config": fingerprint(config) if config is not None else None}


def fingerprint(obj, _stack: tuple = (), _where: str = "the value") -> Any:
    """A JSON value that is equal for two objects exactly when what they hold is equal (see the module
    docstring). Raises ParameterError for an object it cannot read (naming its type and where it sits)."""
    if obj is None or isinstance(obj, (bool, int)) and not isinstance(obj, enum.Enum):
        return obj
    if isinstance(obj, float):
        return {"float": repr(obj)}
    if isinstance(obj, (str, PurePath)):
        named = _named_file(obj)
        if named is not None:
            return named
        if isinstance(obj, PurePath):
            return {"path": str(obj)}
        return obj if len(obj) <= _INLINE else {"str": _sha(obj.encode("utf-8")), "len": len(obj)}
    if isinstance(obj, (bytes, bytearray)):
        return {"bytes": _sha(bytes(obj)), "len": len(obj)}
    if isinstance(obj, np.generic):
        return {"scalar": obj.dtype.str, "value": fingerprint(obj.item())}
    if isinstance(obj, np.ndarray):
        return _array(obj)
    if isinstance(obj, enum.Enum):
        return {"enum": _qualname(obj), "name": obj.name}
    if isinstance(obj, range):
        return {"range": [obj.start, obj.stop, obj.step]}
    if id(obj) in _stack:
        return {"cycle": _qualname(obj)}
    stack = _stack + (id(obj),)
    tokenizer = _tokenizer(obj, stack, _where)
    if tokenizer is not None:
        return tokenizer
    custom = getattr(type(obj), "cache_fingerprint", None)
    if custom is not None and not isinstance(obj, type):
        return {"object": _qualname(obj), "fingerprint": fingerprint(obj.cache_fingerprint(), stack, _where)}
    if isinstance(obj, (list, tuple)):
        items = [fingerprint(x, stack, f"{_where}[{i}]") for i, x in enumerate(obj)]
        kind = "tuple" if isinstance(obj, tuple) else "list"
        return {kind: items} if len(items) <= _INLINE else {kind: _digest_json(items), "len": len(items)}
    if isinstance(obj, (set, frozenset)):
        items = sorted((fingerprint(x, stack, f"{_where} (an item)") for x in obj), key=lambda v: json.dumps(v, sort_keys=True))
        return {"set": items if len(items) <= _INLINE else _digest_json(items)}
    if isinstance(obj, dict):
        items = sorted(([fingerprint(k, stack, _where), fingerprint(v, stack, f"{_where}[{k!r}]")] for k, v in obj.items()),
                       key=lambda kv: json.dumps(kv[0], sort_keys=True))
        return {"dict": items} if len(items) <= _INLINE else {"dict": _digest_json(items), "len": len(items)}
    module_name = type(obj).__module__ or ""
    if module_name.startswith("pandas"):
        return _pandas(obj)
    if "torch" in sys.modules:  # a module of transformers is a torch module too
        import torch

        if isinstance(obj, torch.Tensor):
            return _tensor(obj)
        if isinstance(obj, torch.nn.Module):
            return _module(obj)
        if isinstance(obj, (torch.device, torch.dtype)):
            return {"torch": str(obj)}
    if isinstance(obj, functools.partial):
        return {"partial": fingerprint(obj.func, stack), "args": fingerprint(obj.args, stack),
                "keywords": fingerprint(obj.keywords, stack)}
    if isinstance(obj, (types.FunctionType, types.MethodType)):
        return _function(obj, stack)
    if isinstance(obj, type):
        return {"class": _qualname(obj)}
    if module_name.startswith("tokenizers") and hasattr(obj, "to_str"):  # a trained tokenizer: its JSON
        return {"tokenizers": _qualname(obj), "json": _sha(obj.to_str().encode("utf-8"))}
    if module_name.startswith("transformers") and hasattr(obj, "backend_tokenizer"):  # a fast HF tokenizer
        return {"tokenizer": _qualname(obj), "json": _sha(obj.backend_tokenizer.to_str().encode("utf-8"))}
    if hasattr(obj, "to_dict") and module_name.startswith("transformers"):  # a model config, not where it was read
        config = {k: v for k, v in obj.to_dict().items() if k not in ("_name_or_path", "name_or_path")}
        return {"object": _qualname(obj), "config": fingerprint(config, stack, _where),
                "attention": getattr(obj, "_attn_implementation", None)}
    if dataclasses.is_dataclass(obj):
        return {"object": _qualname(obj),
                "fields": fingerprint({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}, stack, _where)}
    state = obj.__getstate__() if hasattr(obj, "__getstate__") else getattr(obj, "__dict__", None)
    if state is None or isinstance(state, (types.ModuleType,)) or _opaque(obj):
        raise ParameterError(f"cannot fingerprint {_where}, a {_qualname(obj)}, for the analysis cache: it holds no state that "
                             "can be read. Pass plain data (numbers, strings, arrays, tables, models) or give the class a "
                             "cache_fingerprint() method.")
    return {"object": _qualname(obj), "state": fingerprint(state, stack, _where)}


def _named_file(text) -> dict | None:
    """A string or path that names an existing file or folder stands for its content too: the sha256 of the file,
    or of every file under the folder (by relative path); None for anything else."""
    from .io import sha256_file

    if isinstance(text, str) and (not text.strip() or len(text) > 4096 or "\n" in text or "\x00" in text):
        return None
    try:
        path = Path(text).expanduser()
        is_file, is_dir = path.is_file(), path.is_dir()
    except (OSError, ValueError):
        return None
    if is_file:
        return {"file": str(text), "sha256": sha256_file(path)}
    if is_dir:
        from .chapter_cache import folder_digest

        return {"folder": str(text), "files": _digest_json(folder_digest(path))}
    return None


def _tokenizer(obj, stack, where) -> dict | None:
    """A package tokenizer by what defines it -- class, ``metadata()`` (scheme, k, special tokens, framing),
    vocabulary, its plain public settings (``on_invalid``) and, for BPE, the trained model's JSON -- not by the
    lookup tables it builds lazily on use. None for anything else."""
    from .tokenization import BPETokenizer, DNATokenizer

    if not isinstance(obj, DNATokenizer):
        return None
    plain = (str, int, float, bool, type(None))
    settings = {name: value for name, value in vars(obj).items() if not name.startswith("_") and (
        isinstance(value, plain) or isinstance(value, tuple) and all(isinstance(v, plain) for v in value))}
    out = {"tokenizer": _qualname(obj), "metadata": obj.metadata(), "vocab": obj.vocab, "settings": settings}
    if isinstance(obj, BPETokenizer):
        out["backend"] = obj.to_hf().backend_tokenizer.to_str()
    return fingerprint(out, stack, where)


def _opaque(obj) -> bool:
    """Objects whose state is a handle, not data: files, sockets, locks, executors, generators."""
    import io
    import threading
    from concurrent.futures import Executor

    return isinstance(obj, (io.IOBase, Executor, types.GeneratorType, type(threading.Lock())))


def _pandas(obj) -> dict:
    import pandas as pd

    if isinstance(obj, (pd.DataFrame, pd.Series)):
        hashed = pd.util.hash_pandas_object(obj, index=True).to_numpy()
        frame = obj if isinstance(obj, pd.DataFrame) else obj.to_frame()
        return {"pandas": type(obj).__name__, "rows": _sha(hashed.tobytes()),
                "columns": [str(c) for c in frame.columns], "dtypes": [str(d) for d in frame.dtypes],
                "index": str(obj.index.dtype), "attrs": fingerprint(dict(obj.attrs))}
    if isinstance(obj, pd.Index):
        return {"pandas": "Index", "values": _sha(pd.util.hash_pandas_object(obj).to_numpy().tobytes())}
    raise ParameterError(f"cannot fingerprint a {_qualname(obj)} for the analysis cache; pass a DataFrame or Series.")


def _function(fn, stack) -> dict:
    bound = getattr(fn, "__self__", None)
    func = getattr(fn, "__func__", fn)
    module = func.__module__ or ""
    if not module.startswith(__package__ + "."):  # its code would not be in any digest
        raise ParameterError(f"cannot fingerprint the function {module}.{func.__qualname__} for the analysis cache: "
                             f"only {__package__} functions are keyed by their code. Move it into the package or "
                             "call it without the cache.")
    closure = [c.cell_contents for c in func.__closure__ or ()]
    return {"function": f"{module}.{func.__qualname__}", "code": _package_function_digest(func),
            "closure": fingerprint(closure, stack), "defaults": fingerprint(func.__defaults__, stack),
            "kwdefaults": fingerprint(func.__kwdefaults__, stack),
            "self": fingerprint(bound, stack) if bound is not None else None}


@functools.lru_cache(maxsize=1)
def _bundled_data() -> str:
    """Digest of the bundled data files (``data.DATA_DIR``): a function called with an empty ``fasta`` reads them."""
    from .chapter_cache import folder_digest
    from .data import DATA_DIR

    return _digest_json(folder_digest(DATA_DIR))


def _device_type() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


_ABSENT = object()


def _unpickled(body: bytes | None):
    """The value stored in an entry's body, or :data:`_ABSENT` when there is none or it no longer unpickles (a
    class moved): the caller recomputes."""
    if body is None:
        return _ABSENT
    try:
        return pickle.loads(body)
    except Exception:
        return _ABSENT


class Memo:
    """Call package functions through the analysis cache in ``cache_dir`` (None or "" = no cache: every call
    computes). ``hits`` and ``misses`` count this object's calls; ``log`` holds (function, key, "hit"/"miss");
    ``last_hit`` says whether the latest call was read from the cache (so a page can say that a grid was reused)."""

    def __init__(self, cache_dir: str | os.PathLike | None):
        self.cache_dir = Path(cache_dir) if cache_dir not in (None, "") else None
        self.hits = 0
        self.misses = 0
        self.last_hit = False
        self.log: list[tuple[str, str, str]] = []

    def key(self, fn: Callable, *args, **kwargs):
        """The ``cache.CacheKey`` of ``fn(*args, **kwargs)``."""
        from . import cache

        func = getattr(fn, "__func__", fn)
        module = getattr(func, "__module__", "") or ""
        if not callable(fn) or not module.startswith(__package__ + ".") or "<locals>" in func.__qualname__ \
                or "<lambda>" in func.__qualname__:
            raise ParameterError(f"Memo caches {__package__} functions defined at module level, not "
                                 f"{module}.{getattr(func, '__qualname__', fn)!s}: its code would not be in the key.")
        try:
            bound = inspect.signature(fn).bind(*args, **kwargs)
        except TypeError as e:
            raise ParameterError(f"{func.__qualname__}: {e}") from e
        arguments = {name: value for name, value in bound.arguments.items() if name not in NOT_IN_KEY}
        try:
            inputs = {"function": f"{module}.{func.__qualname__}",
                      "arguments": {name: fingerprint(value, _where=name) for name, value in arguments.items()},
                      "data": _bundled_data(), "device": _device_type()}
        except ParameterError as e:
            raise ParameterError(f"{func.__qualname__}: {e}") from e
        return cache.make_key(KIND, inputs, modules=_code_modules(func))

    def __call__(self, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)``, read from the cache when an entry for the same key is there and intact, else
        computed and stored."""
        self.last_hit = False
        writes = any(kwargs.get(name) not in (None, "") for name in WRITES_FILES)
        no_inner_cache = INNER_CACHE in kwargs and kwargs[INNER_CACHE] in (None, "")
        if self.cache_dir is None or writes or no_inner_cache:
            return fn(*args, **kwargs)
        from . import cache

        key = self.key(fn, *args, **kwargs)
        path = cache.entry_path(self.cache_dir, key)
        value = _unpickled(cache.read_entry(path, key))
        if value is not _ABSENT:
            self.hits += 1
            self.last_hit = True
            self.log.append((fn.__qualname__, key.key, "hit"))
            return value
        value = fn(*args, **kwargs)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        cache.write_entry(path, key, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        self.misses += 1
        self.log.append((fn.__qualname__, key.key, "miss"))
        return value

    def summary(self) -> str:
        """One line: how many calls were read from the cache and how many computed."""
        where = f" ({self.cache_dir})" if self.cache_dir is not None else " (cache off)"
        return f"analysis cache{where}: {self.hits} read, {self.misses} computed"


__all__ = ["KIND", "NOT_IN_KEY", "WRITES_FILES", "fingerprint", "Memo"]
