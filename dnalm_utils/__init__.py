"""dnalm_utils: tested helpers behind the executable book on word identity vs sequence context in
DNA language models. Notebooks call these modules; logic lives here, not in cells.

Modules: ``genome`` (FASTA I/O, ACGT segments, window sampling), ``tokenization`` (overlapping /
non-overlapping k-mers, single nucleotides, BPE; token -> nucleotide spans; overlap arithmetic),
``models`` (one loader for hub ids and local folders, device choice, tiny test checkpoints),
``data`` (the bundled real human DNA and its manifest), the probes (``masking``, ``embeddings``,
``nextkmer``, ``finetuning``), the judging (``stats``, ``verdicts``, ``findings``), and the book runner
(``profile_runner``, ``notebook_execution``, ``book_build``, ``cli``). README.md maps every module.
"""

__version__ = "0.1.0"

import warnings as _warnings

# tqdm.auto (used by transformers and this package) warns once per notebook that ipywidgets is missing and
# falls back to text progress bars, which is what a static book wants anyway.
_warnings.filterwarnings("ignore", message="IProgress not found")
