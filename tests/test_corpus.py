"""The pre-training corpus accessors (records, checksum, ACGT pieces, the records safe to split) and the
genome-wide corpus sampled from a genome FASTA."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from dnalm_utils import containment, corpus, data
from dnalm_utils.errors import ParameterError
from dnalm_utils.genome import read_fasta
from dnalm_utils.io import sha256_file


def test_corpus_pieces_are_acgt_only_and_cover_the_corpus():
    pieces = corpus.corpus_pieces()
    assert all(set(p) <= set("ACGTacgt") and len(p) >= 8 for p in pieces)
    total = sum(len(r.sequence) for r in corpus.corpus_records())
    assert 0.95 * total < sum(map(len, pieces)) <= total


def test_acgt_pieces_split_at_n_and_drop_short_runs():
    assert corpus.acgt_pieces(["ACGTACGTAANNACGNACGTACGTACGT", "NNNN"], min_length=8) == ["ACGTACGTAA", "ACGTACGTACGT"]


def test_split_corpus_drops_the_records_contained_in_another():
    kept = corpus.split_corpus_records()
    names = {r.name for r in kept}
    every = {r.name for r in corpus.corpus_records()}
    # inside BA000025.2 (MHC), U01317.1 (beta-globin locus) and the FAU entries X65921.1 / X65923.1
    assert every - names == {"AF129756.1", "V00508.1", "X65923.1", "AY411291.1"}
    assert set(corpus.repeated_corpus_records()) == every - names
    seqs = {r.name: r.sequence for r in kept}
    assert containment.contained_records(seqs) == []  # nothing left that is contained in another record
    # each dropped record is contained in the records kept, by the screen's one measure and threshold
    dropped = [r.sequence for r in corpus.corpus_records() if r.name not in names]
    assert (containment.shared_fraction(dropped, list(seqs.values())) >= containment.CONTAINED_FRACTION).all()


def test_fingerprint_follows_the_file_and_the_screen_follows_an_edited_copy(tmp_path):
    path = data.bundled_file("pretrain")
    assert corpus.corpus_fingerprint() == sha256_file(path)
    copy = tmp_path / "corpus.fa"
    seq = "".join(np.random.default_rng(0).choice(list("ACGT"), 400))
    copy.write_text(f">big\n{seq}\n>inside\n{seq[100:300]}\n>other\n{seq[::-1]}\n")
    assert corpus.corpus_fingerprint(copy) == sha256_file(copy)
    assert corpus.repeated_corpus_records(copy) == ["inside"]
    copy.write_text(f">big\n{seq}\n>other\n{seq[::-1]}\n")  # edited: the cache is keyed by content
    assert corpus.repeated_corpus_records(copy) == []
    assert [r.name for r in corpus.split_corpus_records(copy)] == ["big", "other"]
    shutil.rmtree(tmp_path)


# --------------------------------------------------------------------------------------------------
# sample_genome_corpus: a genome-wide corpus from a (tiny, synthetic) genome FASTA
# --------------------------------------------------------------------------------------------------


def _random_dna(rng, n):
    return "".join(rng.choice(list("ACGT"), n))


def _write_fasta(path, records, width=60):
    with open(path, "w") as fh:
        for name, seq in records.items():
            fh.write(f">{name}\n" + "\n".join(seq[i : i + width] for i in range(0, len(seq), width)) + "\n")
    return path


@pytest.fixture
def genome_records():
    rng = np.random.default_rng(7)
    return {
        "chr1": _random_dna(rng, 40_000),
        "chr2": _random_dna(rng, 8_000) + "N" * 6_000 + _random_dna(rng, 6_000),  # N run: 3+ whole blocks
        "chr22": _random_dna(rng, 20_000),
        "chr22_KI270731v1_random": _random_dna(rng, 5_000),
        "chrUn_GL000220v1": _random_dna(rng, 5_000),
        "chrM": _random_dna(rng, 3_000),
    }


@pytest.fixture
def genome_fasta(tmp_path, genome_records):
    return _write_fasta(tmp_path / "genome.fa", genome_records)


def _blocks(path):
    """(chrom, 0-based start, end, sequence) of every record of a sampled corpus."""
    out = []
    for r in read_fasta(path):
        m = re.fullmatch(r"(.+):(\d+)-(\d+)", r.name)
        assert m, r.name
        out.append((m[1], int(m[2]) - 1, int(m[3]), r.sequence))
    return out


def test_sampled_blocks_are_traceable_inside_their_chromosome_and_do_not_overlap(tmp_path, genome_fasta, genome_records):
    out = corpus.sample_genome_corpus(genome_fasta, tmp_path / "c.fa", total_nt=25_000, block_nt=1_000, seed=1)
    blocks = _blocks(out)
    assert len(blocks) == 25
    for chrom, s, e, seq in blocks:
        assert 0 <= s < e <= len(genome_records[chrom])
        assert seq == genome_records[chrom][s:e]  # the name says exactly where the block comes from
    by_chrom = {}
    for chrom, s, e, _ in blocks:
        by_chrom.setdefault(chrom, []).append((s, e))
    for spans in by_chrom.values():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    # only the assembled chromosomes, never the held-out one nor its contigs, nor chrUn / chrM
    assert set(by_chrom) <= {"chr1", "chr2"}
    # the corpus is read like any other
    assert sum(len(r.sequence) for r in corpus.corpus_records(out)) == 25_000


def test_exclusion_matches_both_spellings_and_every_contig_of_the_held_out_chromosome(tmp_path, genome_fasta):
    out = corpus.sample_genome_corpus(genome_fasta, tmp_path / "a.fa", total_nt=20_000, block_nt=1_000,
                                      exclude="22", primary_only=False, seed=0)
    chroms = {c for c, *_ in _blocks(out)}
    assert not any(c.startswith("chr22") for c in chroms)
    manifest = json.loads(corpus.genome_sample_manifest_path(out).read_text())
    assert set(manifest["excluded_records"]) == {"chr22", "chr22_KI270731v1_random"}
    # every non-excluded record is a candidate when primary_only=False: drawing all their blocks shows it
    everything = corpus.sample_genome_corpus(genome_fasta, tmp_path / "b.fa", total_nt=50_000, block_nt=1_000,
                                             exclude=("chr22",), primary_only=False, max_n_fraction=1.0, seed=0)
    assert {c for c, *_ in _blocks(everything)} == {"chr1", "chr2", "chrUn_GL000220v1", "chrM"}
    with pytest.raises(ParameterError, match="chr21"):
        corpus.sample_genome_corpus(genome_fasta, tmp_path / "c.fa", total_nt=1_000, block_nt=1_000, exclude="chr21")


def test_ensembl_names_are_excluded_by_the_ucsc_name(tmp_path, genome_records):
    renamed = {"1": genome_records["chr1"], "22": genome_records["chr22"]}
    fasta = _write_fasta(tmp_path / "ens.fa", renamed)
    out = corpus.sample_genome_corpus(fasta, tmp_path / "o.fa", total_nt=30_000, block_nt=1_000, seed=0)
    assert {c for c, *_ in _blocks(out)} == {"1"}


def test_n_filter_keeps_blocks_with_at_most_the_allowed_share_of_n(tmp_path, genome_fasta):
    strict = corpus.sample_genome_corpus(genome_fasta, tmp_path / "s.fa", total_nt=50_000, block_nt=1_000,
                                         max_n_fraction=0.0, seed=2)
    assert all(set(seq) <= set("ACGT") for *_, seq in _blocks(strict))
    # all 54 chr1 + chr2 slots without the filter include blocks that are mostly N
    loose = corpus.sample_genome_corpus(genome_fasta, tmp_path / "l.fa", total_nt=54_000, block_nt=1_000,
                                        max_n_fraction=1.0, seed=2)
    assert max(seq.count("N") / len(seq) for *_, seq in _blocks(loose)) > 0.5
    # 60 kb of chr1 + chr2 hold 6 kb of N, so 55 clean blocks of 1 kb cannot exist
    with pytest.raises(ParameterError, match="max_n_fraction"):
        corpus.sample_genome_corpus(genome_fasta, tmp_path / "x.fa", total_nt=55_000, block_nt=1_000,
                                    max_n_fraction=0.0, seed=2)


def test_seed_decides_the_sample_and_total_nt_is_exact(tmp_path, genome_fasta):
    kw = dict(total_nt=12_345, block_nt=1_000)
    a = corpus.sample_genome_corpus(genome_fasta, tmp_path / "a.fa", seed=5, **kw)
    b = corpus.sample_genome_corpus(genome_fasta, tmp_path / "b.fa", seed=5, **kw)
    c = corpus.sample_genome_corpus(genome_fasta, tmp_path / "c.fa", seed=6, **kw)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    lengths = [e - s for _, s, e, _ in _blocks(a)]
    assert sum(lengths) == 12_345 and sorted(lengths)[0] == 345 and len(lengths) == 13


def test_blocks_are_drawn_in_proportion_to_chromosome_length(tmp_path):
    rng = np.random.default_rng(3)
    fasta = _write_fasta(tmp_path / "g.fa", {"chr1": _random_dna(rng, 40_000), "chr2": _random_dna(rng, 10_000),
                                             "chr22": _random_dna(rng, 1_000)})
    share = []
    for seed in range(12):
        out = corpus.sample_genome_corpus(fasta, tmp_path / f"o{seed}.fa", total_nt=10_000, block_nt=500, seed=seed)
        share.append(np.mean([c == "chr1" for c, *_ in _blocks(out)]))
    # chr1 holds 80 % of the slots; 12 samples of 20 of 99 slots: mean within a few points of 0.8
    assert abs(np.mean(share) - 0.8) < 0.06


def test_manifest_reuses_the_output_and_is_invalidated_by_a_changed_source_or_parameter(tmp_path, genome_fasta,
                                                                                        genome_records, monkeypatch):
    out = corpus.sample_genome_corpus(genome_fasta, tmp_path / "c.fa", total_nt=5_000, block_nt=1_000, seed=0)
    manifest = json.loads(corpus.genome_sample_manifest_path(out).read_text())
    assert manifest["output_sha256"] == sha256_file(out)
    assert manifest["source"]["size"] == genome_fasta.stat().st_size
    assert manifest["parameters"]["total_nt"] == 5_000 and manifest["seed"] == 0

    from dnalm_utils import genome as genome_module

    opened = []
    real_open = genome_module.Genome.open.__func__
    monkeypatch.setattr(genome_module.Genome, "open",
                        classmethod(lambda cls, *a, **k: opened.append(a) or real_open(cls, *a, **k)))
    before = out.stat().st_mtime_ns
    corpus.sample_genome_corpus(genome_fasta, out, total_nt=5_000, block_nt=1_000, seed=0)
    assert opened == [] and out.stat().st_mtime_ns == before  # reused, the genome was not even opened

    corpus.sample_genome_corpus(genome_fasta, out, total_nt=6_000, block_nt=1_000, seed=0)  # new parameter
    assert len(opened) == 1 and sum(len(r.sequence) for r in read_fasta(out)) == 6_000

    # a changed source (same names, other DNA) is sampled again, and the blocks follow the new DNA
    rng = np.random.default_rng(99)
    changed = {n: _random_dna(rng, len(s)) for n, s in genome_records.items()}
    _write_fasta(genome_fasta, changed)
    corpus.sample_genome_corpus(genome_fasta, out, total_nt=6_000, block_nt=1_000, seed=0)
    assert len(opened) == 2
    assert all(seq == changed[c][s:e] for c, s, e, seq in _blocks(out))

    out.write_text(">tampered\nACGT\n")  # an output that no longer has the recorded checksum is rebuilt
    corpus.sample_genome_corpus(genome_fasta, out, total_nt=6_000, block_nt=1_000, seed=0)
    assert len(opened) == 3 and json.loads(corpus.genome_sample_manifest_path(out).read_text())[
        "output_sha256"] == sha256_file(out)


def test_bad_input_names_the_parameter(tmp_path, genome_fasta):
    with pytest.raises(ParameterError, match="fasta=.*no such file"):
        corpus.sample_genome_corpus(tmp_path / "missing.fa", tmp_path / "o.fa", total_nt=1_000)
    with pytest.raises(ParameterError, match="total_nt=100,000"):  # chr1 + chr2 hold 60 blocks of 1 kb
        corpus.sample_genome_corpus(genome_fasta, tmp_path / "o.fa", total_nt=100_000, block_nt=1_000)
    with pytest.raises(ParameterError, match="max_n_fraction"):
        corpus.sample_genome_corpus(genome_fasta, tmp_path / "o.fa", total_nt=1_000, max_n_fraction=2)
    with pytest.raises(ParameterError, match="total_nt"):
        corpus.sample_genome_corpus(genome_fasta, tmp_path / "o.fa", total_nt=0)
    assert not (tmp_path / "o.fa").exists()


def test_command_line_samples_and_reports_bad_input(tmp_path, genome_fasta, capsys):
    out = tmp_path / "cli.fa"
    assert corpus.main(["sample-genome", str(genome_fasta), str(out), "--total-nt", "3000", "--block-nt", "1000"]) == 0
    assert sum(len(r.sequence) for r in read_fasta(out)) == 3_000
    assert corpus.main(["sample-genome", str(genome_fasta), str(out), "--total-nt", "3000", "--exclude", "chr9"]) == 2
    assert "exclude='chr9'" in capsys.readouterr().err
