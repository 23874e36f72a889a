"""Training pairs: (question, answer sentence) per parallel group and language, indexed for the samplers."""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.pairs import ParallelIndex
from bench.data.lareqa import LareqaDataset


@dataclass(frozen=True)
class TrainingPairs:
    """What the samplers draw from and the texts the collator tokenises."""

    index: ParallelIndex
    queries: dict[tuple[int, str], str]
    passages: dict[tuple[int, str], str]

    @property
    def n_pairs(self) -> int:
        return len(self.queries)


def training_pairs(train: LareqaDataset, languages: tuple[str, ...]) -> TrainingPairs:
    """Index every (group, language) pair of the training split, for the run's languages only."""
    group_ids = sorted({q.group_id for lang in languages for q in train.by_lang[lang].questions})
    position = {gid: i for i, gid in enumerate(group_ids)}
    queries: dict[tuple[int, str], str] = {}
    passages: dict[tuple[int, str], str] = {}
    for lang in languages:
        data = train.by_lang[lang]
        for question in data.questions:
            key = (position[question.group_id], lang)
            queries[key] = question.text
            passages[key] = data.answer_text(question)
    # Sorted by group position, so the index's first-seen group order equals `position`.
    index = ParallelIndex.from_pairs(((group_ids[g], lang) for g, lang in sorted(queries)), languages)
    assert index.groups == tuple(group_ids)
    return TrainingPairs(index, queries, passages)


def texts_by_language(dataset: LareqaDataset) -> dict[str, list[str]]:
    """All question and candidate texts per language (what a tokenizer is trained on)."""
    return {
        lang: [q.text for q in data.questions] + [c.text for c in data.candidates]
        for lang, data in dataset.by_lang.items()
    }
