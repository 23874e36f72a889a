import gzip
import json

import pytest

from bench.data.lareqa import answer_sentence, heldout_articles, load_lareqa, parse_language, read_squad_file
from bench.errors import DataError


def test_xquad_counts_match_lareqa(xquad):
    assert xquad.n_questions() == 13090
    assert xquad.n_candidates() == 13014
    assert all(len(d.questions) == 1190 for d in xquad.by_lang.values())


def test_mlqa_counts_match_lareqa(mlqa):
    assert mlqa.n_questions() == 4199
    assert mlqa.n_candidates() == 20534


def test_answer_is_the_sentence_containing_answer_start(xquad):
    en = xquad.by_lang["en"]
    question = next(q for q in en.questions if q.group_id == "56beb4343aeaaa14008c925b")
    assert "308" in en.answer_text(question)


def test_parallel_groups_are_shared_across_languages(xquad):
    groups = {lang: {q.group_id for q in d.questions} for lang, d in xquad.by_lang.items()}
    assert all(g == groups["en"] for g in groups.values())


def test_split_is_by_article_deterministic_and_disjoint(xquad, xquad_split):
    train, heldout = xquad_split
    train_articles = {q.article for q in train.by_lang["en"].questions}
    heldout_articles_ = {q.article for q in heldout.by_lang["en"].questions}
    assert not train_articles & heldout_articles_
    assert len(heldout_articles_) == 12 and len(train_articles) == 36
    assert train.n_questions() + heldout.n_questions() == xquad.n_questions()
    assert train.n_candidates() + heldout.n_candidates() == xquad.n_candidates()
    assert heldout_articles(xquad.article_titles, 0.25) == heldout_articles(xquad.article_titles, 0.25)


def test_restricted_answers_still_point_at_the_answer(xquad_split):
    _, heldout = xquad_split
    for data in heldout.by_lang.values():
        for q in data.questions:
            assert data.candidates[q.answer].article == q.article


def test_sentence_breaks_not_sentences_field_define_candidates():
    payload = {"data": [{"title": "t", "paragraphs": [{
        "context": "One two. Three four.", "sentence_breaks": [[0, 8], [9, 20]], "sentences": ["bogus"],
        "qas": [{"id": "g1", "question": "q?", "answers": [{"answer_start": 9, "text": "Three"}]}]}]}]}
    data, _ = parse_language("en", payload, source=None)
    assert [c.text for c in data.candidates] == ["One two.", "Three four."]
    assert data.questions[0].answer == 1


def test_answer_outside_every_sentence_is_an_error():
    with pytest.raises(ValueError):
        answer_sentence([[0, 5]], 7)


def test_corrupt_and_missing_files_are_one_line_data_errors(tmp_path):
    (tmp_path / "en.json.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not valid gzipped JSON"):
        read_squad_file(tmp_path / "en.json.gz")
    with pytest.raises(DataError, match="not found"):
        load_lareqa("x", tmp_path, ("de",))
    with gzip.open(tmp_path / "fr.json.gz", "wt") as f:
        json.dump({"data": [{"paragraphs": [{"context": "x"}]}]}, f)
    with pytest.raises(DataError, match="malformed"):
        load_lareqa("x", tmp_path, ("fr",))
