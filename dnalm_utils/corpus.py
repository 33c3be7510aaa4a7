"""The pre-training corpus as data: its records, checksum, ACGT pieces, and the records safe to split.

Default corpus: the bundled EMBOSS human INSDC entries (``data.bundled_file("pretrain")``); every function
takes ``path`` to read another FASTA instead. Pre-training (``dnalm_utils.pretraining``) uses every record;
analyses that cut the corpus into training / validation / test blocks (next-k-mer, fine-tuning baselines)
use :func:`split_corpus_records`, which leaves out the records contained in others (the package's one
containment screen, :mod:`dnalm_utils.containment`: half or more of their 32-mers in the other records).

A genome-wide corpus (the GPU profile): :func:`sample_genome_corpus` draws non-overlapping blocks uniformly
from a user's hg19/hg38 FASTA (indexed access), leaving out the held-out chromosome, and writes them as a
FASTA that :func:`corpus_records` and ``pretraining.train(..., corpus=path)`` read unchanged. From the shell::

    python -m dnalm_utils.corpus sample-genome hg38.fa out.fa --total-nt 200000000

What the bundled corpus is made of (its one dominant locus, its GC against the held-out slice) is told by
:mod:`dnalm_utils.corpus_composition`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .codec import encode
from .errors import DnalmInputError, ParameterError, check_int_range
from .io import atomic_path, atomic_write_json, sha256_file

__all__ = [
    "corpus_records",
    "corpus_fingerprint",
    "repeated_corpus_records",
    "split_corpus_records",
    "acgt_pieces",
    "corpus_pieces",
    "PRIMARY_CHROMOSOME",
    "genome_sample_manifest_path",
    "sample_genome_corpus",
    "main",
]


def _corpus_path(path: str | os.PathLike | None):
    from . import data

    return path or data.bundled_file("pretrain")


def corpus_records(path: str | os.PathLike | None = None):
    """FASTA records (``genome.FastaRecord``, sequences upper-cased) of the pre-training corpus (default: the
    bundled EMBOSS human entries)."""
    from . import genome

    return genome.read_fasta(_corpus_path(path))


def corpus_fingerprint(path: str | os.PathLike | None = None) -> str:
    """sha256 (hex) of the corpus FASTA file (the bundled one by default): part of every cache key that
    depends on the corpus."""
    return sha256_file(_corpus_path(path))


def repeated_corpus_records(path: str | os.PathLike | None = None) -> list[str]:
    """Names of the corpus records contained in the other records (``containment.contained_records`` with its
    one k and threshold), in the order they were dropped; left out by :func:`split_corpus_records`.

    In the bundled corpus: AY411291.1 and X65923.1 (FAU entries repeating X65923.1 and X65921.1), V00508.1
    (epsilon-globin, inside the beta-globin locus U01317.1) and AF129756.1 (MHC class III region, inside
    BA000025.2). Cached per file content.
    """
    return list(_contained_corpus_records(str(path or ""), corpus_fingerprint(path)))


@functools.lru_cache(maxsize=8)
def _contained_corpus_records(path: str, sha256: str) -> tuple[str, ...]:
    """Cached by (path, file checksum) so that an edited file is screened again."""
    from .containment import contained_records

    return tuple(contained_records({r.name: r.sequence for r in corpus_records(path or None)}))


def split_corpus_records(path: str | os.PathLike | None = None):
    """The corpus records that may be cut into training / validation / test blocks: :func:`corpus_records`
    minus :func:`repeated_corpus_records`, so that no stretch of DNA lands on both sides of a split.
    Pre-training keeps them all."""
    drop = set(repeated_corpus_records(path))
    return [r for r in corpus_records(path) if r.name not in drop]


def acgt_pieces(seqs: Iterable[str], min_length: int = 8) -> list[str]:
    """The maximal A/C/G/T-only runs of at least ``min_length`` nt of ``seqs`` (N and IUPAC codes split a
    sequence), in order: what a tokenizer is trained or counted on."""
    from .genome import acgt_segments

    return [s[a:b] for s in seqs for a, b in acgt_segments(s, min_length)]


def corpus_pieces(path: str | os.PathLike | None = None, *, min_length: int = 8) -> list[str]:
    """The pre-training corpus as ACGT-only pieces of at least ``min_length`` nt (:func:`acgt_pieces`), ready
    for any tokenizer, e.g. to count token frequencies."""
    return acgt_pieces((r.sequence for r in corpus_records(path)), min_length)



# --------------------------------------------------------------------------------------------------
# A genome-wide pre-training corpus sampled from a user's FASTA
# --------------------------------------------------------------------------------------------------

#: Names of the assembled nuclear chromosomes, UCSC ("chr1".."chr22", "chrX", "chrY") or Ensembl/NCBI ("1",
#: "X") style; :func:`sample_genome_corpus` keeps only these by default (no alt haplotypes, which repeat
#: primary sequence, no unplaced or random contigs, no chrM).
PRIMARY_CHROMOSOME = re.compile(r"(?:chr)?(?:[1-9][0-9]?|X|Y)", re.IGNORECASE)
#: Nucleotides per line of the written FASTA (fixed, so the output can be indexed with pyfaidx).
_LINE_NT = 60
_MANIFEST_KIND = "dnalm_utils.corpus.sample_genome_corpus"


def genome_sample_manifest_path(out_fasta: str | os.PathLike) -> Path:
    """The JSON manifest written next to a sampled corpus: ``<out_fasta>.manifest.json``."""
    out = Path(out_fasta)
    return out.with_name(out.name + ".manifest.json")


def _chrom_key(name: str) -> str:
    """'chr22' and '22' -> '22' (case-insensitive 'chr' prefix removed): how exclude names are matched."""
    return name[3:] if name[:3].lower() == "chr" else name


def _excluded_records(names: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """Record names that ``exclude`` names: the chromosome itself ('chr22' or '22', either spelling) and its
    alt / random / fix contigs ('chr22_KI270731v1_random'). Raises ParameterError for a name matching none."""
    out = []
    for e in exclude:
        key = _chrom_key(e)
        hits = [n for n in names if _chrom_key(n) == key or _chrom_key(n).startswith(key + "_")]
        if not any(_chrom_key(n) == key for n in hits):
            shown = ", ".join(repr(n) for n in names[:12]) + (", ..." if len(names) > 12 else "")
            raise ParameterError(
                f"exclude={e!r} names no record of the genome ({len(names)} records: {shown}). Pass the held-out "
                "chromosome as the FASTA names it ('chr22' and '22' are both matched), or exclude=() to keep every "
                "chromosome."
            )
        out += [n for n in hits if n not in out]
    return out


def _check_sampling_parameters(total_nt, block_nt, exclude, max_n_fraction, seed):
    total_nt = check_int_range("total_nt", total_nt, 1, hint="It is the corpus size in nt, e.g. 200_000_000.")
    block_nt = check_int_range("block_nt", block_nt, 1, hint="It is the length of each sampled block in nt.")
    seed = check_int_range("seed", seed, 0, hint="Pass a fixed non-negative integer for reproducibility.")
    if isinstance(exclude, str):
        exclude = (exclude,)
    exclude = list(exclude)
    if not all(isinstance(e, str) and e for e in exclude):
        raise ParameterError(f"exclude={exclude!r} must be chromosome names, e.g. ('chr22',), or () for none.")
    try:
        max_n_fraction = float(max_n_fraction)
    except (TypeError, ValueError):
        raise ParameterError(f"max_n_fraction={max_n_fraction!r} must be a number in [0, 1].") from None
    if not 0.0 <= max_n_fraction <= 1.0:
        raise ParameterError(f"max_n_fraction={max_n_fraction} must lie in [0, 1]: the largest share of non-ACGT "
                             "letters (N) a block may hold, e.g. 0.01.")
    return total_nt, block_nt, sorted(set(exclude)), max_n_fraction, seed


def _source_fingerprint(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def _reusable(out: Path, manifest_path: Path, expected: dict) -> bool:
    """True when ``out`` and its manifest exist, the manifest records ``expected`` (source, parameters, seed)
    and the output's sha256 is the recorded one."""
    if not (out.is_file() and manifest_path.is_file()):
        return False
    try:
        old = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if any(old.get(key) != value for key, value in expected.items()):
        return False
    return old.get("output_sha256") == sha256_file(out)


def sample_genome_corpus(fasta: str | os.PathLike, out_fasta: str | os.PathLike, *, total_nt: int,
                         block_nt: int = 10_000, exclude: Sequence[str] | str = ("chr22",),
                         max_n_fraction: float = 0.01, seed: int = 0, primary_only: bool = True,
                         progress: bool | None = None) -> Path:
    """Write a pre-training corpus of ``total_nt`` nt sampled uniformly from a genome FASTA; return its path.

    ``fasta``: a user's genome (e.g. hg38.fa, plain or bgzip), read by random access through
    ``genome.Genome.open`` (pyfaidx), never loaded whole. The chromosomes kept are the assembled nuclear ones
    (:data:`PRIMARY_CHROMOSOME`; every record if ``primary_only=False``) minus ``exclude`` -- the held-out
    chromosome(s), matched as 'chr22' or '22', together with their alt / random contigs. Each kept chromosome
    is cut into consecutive slots of ``block_nt`` nt from a seeded random phase in ``[0, block_nt)``, so blocks
    never overlap and lie inside their chromosome; slots are drawn uniformly without replacement over the
    whole genome (so each chromosome's share follows its length) and a slot whose share of non-ACGT letters
    exceeds ``max_n_fraction`` is skipped, until ``ceil(total_nt / block_nt)`` blocks are taken; the last one is
    cut to make exactly ``total_nt`` nt.

    Output: a FASTA (plain text, 60 nt per line, upper case), one record per block in genome order, named
    ``<chrom>:<start>-<end>`` (1-based, inclusive, as samtools writes a region; ``genome.Window.locus`` resolves
    it), written atomically, and ``<out_fasta>.manifest.json`` (:func:`genome_sample_manifest_path`) holding the
    source (absolute path, size, mtime), the parameters, the seed, the excluded records and the sha256 of the
    output. A later call whose source and parameters match that manifest, and whose output still has the
    recorded sha256, returns the existing file without sampling again.

    Raises :class:`ParameterError` for a missing ``fasta``, an ``exclude`` name that matches no record, a
    ``total_nt`` larger than the kept chromosomes allow (in ``block_nt`` slots, after the N filter), or a
    parameter out of range.
    """
    from .genome import Genome

    total_nt, block_nt, exclude, max_n_fraction, seed = _check_sampling_parameters(
        total_nt, block_nt, exclude, max_n_fraction, seed)
    src = Path(os.fspath(fasta))
    if not src.is_file():
        raise ParameterError(
            f"fasta={str(src)!r}: no such file (absolute path {src.absolute()}). Pass the path of your genome FASTA, "
            "e.g. hg38.fa (plain or bgzip), downloaded from UCSC or Ensembl."
        )
    out = Path(os.fspath(out_fasta))
    if out.name.lower().endswith((".gz", ".bgz")):
        raise ParameterError(f"out_fasta={str(out)!r}: the sampled corpus is written as plain text; give a name "
                             "ending in .fa or .fasta.")
    if out.resolve() == src.resolve():
        raise ParameterError(f"out_fasta={str(out)!r} is the input genome itself; choose another file name.")
    manifest_path = genome_sample_manifest_path(out)
    expected = {
        "kind": _MANIFEST_KIND,
        "source": _source_fingerprint(src),
        "parameters": {"total_nt": total_nt, "block_nt": block_nt, "exclude": exclude,
                       "max_n_fraction": max_n_fraction, "primary_only": bool(primary_only)},
        "seed": seed,
    }
    if _reusable(out, manifest_path, expected):
        return out

    with Genome.open(src) as genome:
        dropped = _excluded_records(genome.names, exclude)
        kept = [n for n in genome.names if n not in dropped
                and (not primary_only or PRIMARY_CHROMOSOME.fullmatch(n))]
        if not kept:
            raise ParameterError(
                f"{src}: no chromosome is left to sample from after exclude={exclude} and primary_only="
                f"{primary_only} (records: {', '.join(genome.names[:12])}). Pass primary_only=False to sample every "
                "record, or fewer exclude names."
            )
        rng = np.random.default_rng(seed)
        chrom_idx, starts = [], []
        for i, name in enumerate(kept):
            length = genome.lengths[name]
            phase = int(rng.integers(0, block_nt)) if length >= 2 * block_nt else 0
            s = np.arange(phase, length - block_nt + 1, block_nt, dtype=np.int64)
            chrom_idx.append(np.full(s.size, i, dtype=np.int32))
            starts.append(s)
        chrom_idx, starts = np.concatenate(chrom_idx), np.concatenate(starts)
        n_blocks = -(-total_nt // block_nt)
        if starts.size < n_blocks:
            raise ParameterError(
                f"total_nt={total_nt:,} needs {n_blocks:,} blocks of {block_nt:,} nt, but the {len(kept)} chromosomes "
                f"kept ({sum(genome.lengths[n] for n in kept):,} nt) hold only {starts.size:,} non-overlapping "
                f"blocks. Use a smaller total_nt (at most {starts.size * block_nt:,}) or a smaller block_nt."
            )
        order = rng.permutation(starts.size)
        chosen, skipped = [], 0
        from tqdm import tqdm

        with tqdm(total=n_blocks, unit="block", desc="genome blocks",
                  disable=not (n_blocks > 1000 if progress is None else progress)) as bar:
            for j in order.tolist():
                name, s = kept[chrom_idx[j]], int(starts[j])
                seq = genome.fetch(name, s, s + block_nt)
                non_acgt = int((encode(seq) >= 4).sum())  # N and other IUPAC codes
                if non_acgt > max_n_fraction * block_nt:
                    skipped += 1
                    continue
                chosen.append((int(chrom_idx[j]), s))
                bar.update(1)
                if len(chosen) == n_blocks:
                    break
        if len(chosen) < n_blocks:
            raise ParameterError(
                f"total_nt={total_nt:,}: only {len(chosen):,} of the {starts.size:,} blocks of {block_nt:,} nt hold at "
                f"most {max_n_fraction:.1%} N, {len(chosen) * block_nt:,} nt in all. Use a smaller total_nt or a "
                "larger max_n_fraction."
            )
        chosen.sort()
        with atomic_path(out) as tmp, open(tmp, "w", encoding="ascii", newline="\n") as fh:
            left = total_nt
            for i, s in chosen:
                name = kept[i]
                e = s + min(block_nt, left)
                seq = genome.fetch(name, s, e)
                left -= e - s
                fh.write(f">{name}:{s + 1}-{e}\n")
                fh.writelines(seq[a : a + _LINE_NT] + "\n" for a in range(0, len(seq), _LINE_NT))
    manifest = {**expected, "excluded_records": dropped, "chromosomes_sampled": kept, "records": len(chosen),
                "output_nt": total_nt, "blocks_skipped_for_n": skipped, "output_sha256": sha256_file(out)}
    atomic_write_json(manifest_path, manifest)
    return out


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dnalm_utils.corpus",
                                     description="Build a pre-training corpus for the book.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sg = sub.add_parser("sample-genome", help="sample a genome-wide corpus from a genome FASTA",
                        description=sample_genome_corpus.__doc__.split("\n\n")[0])
    sg.add_argument("fasta", help="genome FASTA, e.g. hg38.fa (plain or bgzip)")
    sg.add_argument("out_fasta", help="corpus FASTA to write (plain text)")
    sg.add_argument("--total-nt", type=int, required=True, help="corpus size in nt, e.g. 200000000")
    sg.add_argument("--block-nt", type=int, default=10_000, help="nt per sampled block (default 10000)")
    sg.add_argument("--exclude", nargs="*", default=["chr22"],
                    help="held-out chromosome(s) left out (default chr22; '22' also matches)")
    sg.add_argument("--max-n-fraction", type=float, default=0.01,
                    help="largest share of N in a kept block (default 0.01)")
    sg.add_argument("--seed", type=int, default=0)
    sg.add_argument("--all-records", action="store_true",
                    help="sample every record, not only the assembled chromosomes 1-22, X, Y")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``sample-genome FASTA OUT --total-nt N``; bad input prints ``error: ...`` and returns 2."""
    args = _build_parser().parse_args(argv)
    try:
        out = sample_genome_corpus(args.fasta, args.out_fasta, total_nt=args.total_nt, block_nt=args.block_nt,
                                   exclude=tuple(args.exclude), max_n_fraction=args.max_n_fraction,
                                   seed=args.seed, primary_only=not args.all_records)
    except DnalmInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{out} ({genome_sample_manifest_path(out).name} next to it); pass it as the corpus, e.g. "
          f"`dnalm-book run --profile gpu -p pretrain_fasta {out}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
