"""Scoring rules, with values computed by hand: strict, and LLaVA-Med v1.0.0's (its quirks included)."""

from __future__ import annotations

import pytest

from medapp.eval import llava_med
from medapp.eval.datasets import Question
from medapp.eval.metrics import closed_correct, exact_match, polarity, token_scores
from medapp.eval.normalize import normalize
from medapp.eval.scoring import score


def q(qid: str, answer: str, closed: bool, **cats: str) -> Question:
    from pathlib import Path

    return Question(qid, "?", answer, closed, Path("x.png"), cats)


# ------------------------------------------------------------------------------------------------ strict
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Liver.", "liver"),
        ("Two lesions, an effusion", "2 lesions effusion"),
        ("1,000 ml", "1000 ml"),
        ("2.5 cm", "2.5 cm"),
        ("left-sided (LUL)", "left sided lul"),
        ("none", "none"),  # unlike LLaVA-Med, "none" stays a word
        ("ＣＴ", "ct"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_strict_closed_yes_no_by_whole_word_polarity() -> None:
    assert closed_correct("No.", "no")
    assert closed_correct("No, there is no effusion", "no")
    assert not closed_correct("normal", "no")  # no substring matching: "normal" is not "no"
    assert not closed_correct("Yes and no", "yes")  # both polarities: wrong whatever the truth
    assert not closed_correct("Yes and no", "no")
    assert not closed_correct("The eyes are normal", "yes")
    assert closed_correct("yes", "Yes")
    assert polarity("no, yes") == {"yes", "no"}


def test_strict_closed_other_answers_as_whole_words() -> None:
    assert closed_correct("The liver is larger", "Liver")
    assert not closed_correct("livers", "liver")
    assert closed_correct("It is a CT scan", "CT")
    assert closed_correct("left lung", "left lung") and not closed_correct("lung left", "left lung")


def test_strict_open_token_scores_by_hand() -> None:
    # pred tokens: [left, lung, lung] ; truth: [left, upper, lung]; overlap = left + one lung = 2
    s = token_scores("the left lung, lung", "Left upper lung")
    assert s.precision == pytest.approx(2 / 3) and s.recall == pytest.approx(2 / 3) and s.f1 == pytest.approx(2 / 3)
    s = token_scores("lung", "left upper lung")
    assert (s.precision, s.recall) == (1.0, pytest.approx(1 / 3)) and s.f1 == pytest.approx(0.5)
    assert token_scores("", "lung").f1 == 0.0
    assert exact_match("The two nodules.", "2 nodules") and not exact_match("", "")


def test_strict_totals_by_hand_every_closed_question_counted() -> None:
    questions = [q("1", "yes", True, modality="CT"), q("2", "no", True, modality="CT"), q("3", "no", True,
                 modality="MRI"), q("4", "left upper lung", False, modality="CT"), q("5", "liver", False,
                 modality="MRI"), q("6", "spleen", False)]
    preds = {"1": "Yes.", "2": "yes", "3": "normal", "4": "lung", "5": "The liver", "99": "stray"}
    r = score(questions, preds, "strict", "slake")
    t = r.totals
    assert (r.n_questions, r.n_missing, r.n_unknown) == (6, 1, 1)  # q6 missing, id 99 unknown
    assert (t["n_closed"], t["n_open"], t["closed_counted"], t["closed_correct"]) == (3, 2, 3, 1)
    assert t["closed_accuracy"] == pytest.approx(1 / 3)
    assert t["open_recall"] == pytest.approx((1 / 3 + 1) / 2)
    assert t["open_precision"] == pytest.approx(1.0)
    assert t["open_f1"] == pytest.approx((0.5 + 1) / 2)
    assert t["open_exact"] == pytest.approx(0.5)
    assert t["overall_accuracy"] == pytest.approx((1 + 0 + 0 + 0 + 1) / 5)
    ct = r.by_category["modality"]["CT"]
    assert (ct["n_closed"], ct["closed_accuracy"], ct["n_open"], ct["open_recall"]) == (2, 0.5, 1, pytest.approx(1 / 3))
    assert r.by_category["modality"]["MRI"]["closed_accuracy"] == 0.0


# ------------------------------------------------------------------------------------------------ LLaVA-Med
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the liver.", "liver"),
        ("none", "0"),  # the number map turns "none" into "0"
        ("left-sided (lul)", "left sided lul"),  # touching no space: replaced by a space
        ("yes , it is", "yes it is"),  # touching a space: deleted
        ("1,000 cells; many", "1000 cells many"),  # a digit-comma-digit anywhere: every mark deleted
        ("dont know", "don't know"),  # contractions get their apostrophe back
        ("2.5 cm", "2.5 cm"),
    ],
)
def test_llava_normalize_word(text: str, expected: str) -> None:
    assert llava_med.normalize_word(text) == expected


def test_llava_normalize_deletes_at_most_32_periods() -> None:
    """re.UNICODE (32) passed as Pattern.sub's count: the 33rd period onwards survives."""
    assert llava_med.normalize_word("." * 40 + "x") == "." * 8 + "x"


def test_llava_closed_substring_rules() -> None:
    prep = llava_med.prepare
    assert llava_med.closed_hit(prep("normal"), prep("no")) == 1  # "no" found inside "normal"
    assert llava_med.closed_hit(prep("yes and no"), prep("yes")) == 1
    assert llava_med.closed_hit(prep("liver"), prep("liver")) == 0  # no yes/no anywhere: wrong even if right
    assert llava_med.closed_hit(prep("yes"), prep("no")) == 0
    # the quirk: yes/no present but the truth absent leaves the denominator (Path-VQA script)
    assert llava_med.closed_hit(prep("yes"), prep("no"), drop_wrong=True) is None


def test_llava_open_f1_and_exact_by_hand() -> None:
    # candidate counts {liver: 2}, reference {liver: 1, spleen: 1}: tp = 2 (candidate's count), fp 0, fn 1
    f1, p, r = llava_med.f1_precision_recall("liver liver", "liver spleen")
    assert (p, r) == (1.0, pytest.approx(2 / 3)) and f1 == pytest.approx(0.8)
    # "exact match": distinct reference words found / candidate word count = 1 / 3
    assert llava_med.exact_match_score("left lung mass", "lung") == pytest.approx(1 / 3)
    assert llava_med.exact_match_score("", "lung") == 0.0
    assert llava_med.f1_precision_recall("heart", "lung") == (0.0, 0.0, 0.0)


def test_llava_rule_denominator_quirk_by_dataset() -> None:
    """Path-VQA (run_eval_pvqa.py) drops a wrong yes/no answer; VQA-RAD (run_eval.py after b9a98a7) counts it."""
    questions = [q("1", "yes", True), q("2", "no", True), q("3", "no", True), q("4", "no", True)]
    preds = {"1": "yes", "2": "yes", "3": "maybe", "4": "It is not normal"}
    # 1: hit; 2: yes/no present, truth absent -> dropped (pvqa) / 0; 3: neither -> 0; 4: "no" in "not": hit
    pvqa = score(questions, preds, "llava-med", "path-vqa").totals
    rad = score(questions, preds, "llava-med", "vqa-rad").totals
    assert (pvqa["n_closed"], pvqa["closed_counted"], pvqa["closed_dropped"], pvqa["closed_correct"]) == (4, 3, 1, 2)
    assert pvqa["closed_accuracy"] == pytest.approx(2 / 3)
    assert (rad["closed_counted"], rad["closed_accuracy"]) == (4, 0.5)
    strict = score(questions, preds, "strict", "path-vqa").totals
    assert (strict["n_closed"], strict["closed_counted"], strict["closed_accuracy"]) == (4, 4, 0.25)


def test_scoring_twice_gives_identical_numbers() -> None:
    questions = [q(str(i), a, a in ("yes", "no")) for i, a in enumerate(["yes", "no", "liver", "two nodules"])]
    preds = {"0": "yes", "1": "no.", "2": "the liver", "3": "2 nodules seen"}
    for rule in ("strict", "llava-med"):
        assert score(questions, preds, rule, "path-vqa").to_json() == score(questions, preds, rule,
                                                                             "path-vqa").to_json()
