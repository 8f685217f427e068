from har_mlops.pipelines.training.registry import decide_promotion

SUBJECTS = ["2", "4", "9"]


def test_first_model_above_gate_becomes_champion():
    decision = decide_promotion(0.96, SUBJECTS, None, 0.95)
    assert decision["alias"] == "champion"
    assert "no champion yet" in decision["reasons"][0]


def test_model_below_gate_is_challenger_even_without_champion():
    decision = decide_promotion(0.90, SUBJECTS, None, 0.95)
    assert decision == {
        "alias": "challenger",
        "reasons": ["macro-F1 0.9000 is below the gate 0.9500"],
    }


def test_better_than_champion_on_same_subjects_is_promoted():
    champion = {"version": "3", "macro_f1": 0.955, "test_subjects": ["9", "4", "2"]}
    decision = decide_promotion(0.97, SUBJECTS, champion, 0.95)
    assert decision["alias"] == "champion"
    assert "beats champion v3 (0.9550)" in decision["reasons"][0]


def test_equal_to_champion_is_promoted():
    champion = {"version": "3", "macro_f1": 0.97, "test_subjects": SUBJECTS}
    assert decide_promotion(0.97, SUBJECTS, champion, 0.95)["alias"] == "champion"


def test_worse_than_champion_stays_challenger_with_reason():
    champion = {"version": "3", "macro_f1": 0.98, "test_subjects": SUBJECTS}
    decision = decide_promotion(0.97, SUBJECTS, champion, 0.95)
    assert decision["alias"] == "challenger"
    assert decision["reasons"] == ["macro-F1 0.9700 is below champion v3's 0.9800"]


def test_champion_on_other_subjects_is_not_comparable():
    champion = {"version": "1", "macro_f1": 0.5, "test_subjects": ["2"]}
    decision = decide_promotion(0.97, SUBJECTS, champion, 0.95)
    assert decision["alias"] == "challenger"
    assert "not comparable" in decision["reasons"][0]


def test_below_gate_and_below_champion_lists_both_reasons():
    champion = {"version": "2", "macro_f1": 0.96, "test_subjects": SUBJECTS}
    decision = decide_promotion(0.90, SUBJECTS, champion, 0.95)
    assert len(decision["reasons"]) == 2
