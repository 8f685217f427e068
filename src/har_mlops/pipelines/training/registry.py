"""The model-registry quality gate: who becomes ``champion``."""

from __future__ import annotations

from typing import Any


def decide_promotion(
    candidate_macro_f1: float,
    test_subjects: list[str],
    champion: dict[str, Any] | None,
    min_macro_f1: float,
) -> dict[str, Any]:
    """Returns ``{"alias": "champion"|"challenger", "reasons": [...]}`` for a new model version.

    ``champion`` is ``None`` when no champion exists, else ``{"version", "macro_f1",
    "test_subjects"}``. A champion evaluated on other test subjects cannot be compared, so the
    candidate stays challenger until someone promotes it by hand.
    """
    reasons = []
    if candidate_macro_f1 < min_macro_f1:
        reasons.append(f"macro-F1 {candidate_macro_f1:.4f} is below the gate {min_macro_f1:.4f}")
    if champion is not None:
        if sorted(map(str, champion["test_subjects"])) != sorted(map(str, test_subjects)):
            reasons.append(
                f"champion v{champion['version']} was evaluated on test subjects "
                f"{champion['test_subjects']}, not {list(test_subjects)}: not comparable"
            )
        elif candidate_macro_f1 < champion["macro_f1"]:
            reasons.append(
                f"macro-F1 {candidate_macro_f1:.4f} is below champion v{champion['version']}'s "
                f"{champion['macro_f1']:.4f}"
            )
    if reasons:
        return {"alias": "challenger", "reasons": reasons}
    beaten = (
        f"beats champion v{champion['version']} ({champion['macro_f1']:.4f})"
        if champion
        else "no champion yet"
    )
    return {
        "alias": "champion",
        "reasons": [f"macro-F1 {candidate_macro_f1:.4f} >= gate {min_macro_f1:.4f}; {beaten}"],
    }
