"""The model-registry quality gate: who becomes ``champion``.

A test macro-F1 moves by several thousandths with the seed and the machine alone, so the gate
does not compare two single numbers. It asks two paired questions on the test windows
(``comparison.paired_bootstrap`` over subjects): is the network significantly worse than the
random forest trained in the same run (then something is broken), and is it significantly
better than, tied with, or worse than the current champion on the same windows. A floor on
macro-F1 only catches a model that did not train.
"""

from __future__ import annotations

from typing import Any


def _bootstrap_text(name: str, comparison: dict[str, Any]) -> str:
    low, high = comparison["interval"]
    return (
        f"{comparison['decision']} against {name}: macro-F1 difference "
        f"{comparison['delta_macro_f1']:+.4f}, {comparison['confidence']:.0%} interval "
        f"[{low:+.4f}, {high:+.4f}] over {len(comparison['subjects'])} test subjects"
    )


def decide_promotion(
    candidate_macro_f1: float,
    min_macro_f1: float,
    versus_baseline: dict[str, Any] | None,
    champion: dict[str, Any] | None,
    versus_champion: dict[str, Any] | None,
    promote_on_tie: bool,
) -> dict[str, Any]:
    """Returns ``{"alias": "champion"|"challenger", "reasons": [...]}`` for a new model version.

    ``versus_baseline`` / ``versus_champion`` are ``paired_bootstrap`` results of the candidate
    against the same run's baseline / the champion, or ``{"decision": "not comparable",
    "reason": ...}`` when the two were not scored on the same windows; ``champion`` is ``None``
    when none is registered, else ``{"version", "macro_f1"}``.
    """
    blocking, notes = [], []
    if candidate_macro_f1 < min_macro_f1:
        blocking.append(f"macro-F1 {candidate_macro_f1:.4f} is below the floor {min_macro_f1:.4f}")
    if versus_baseline is not None:
        if versus_baseline["decision"] == "loss":
            blocking.append(_bootstrap_text("the baseline of this run", versus_baseline))
        elif versus_baseline["decision"] != "not comparable":
            notes.append(_bootstrap_text("the baseline of this run", versus_baseline))
    if champion is None:
        notes.append("no champion yet")
    else:
        name = f"champion v{champion['version']} ({champion['macro_f1']:.4f})"
        decision = (versus_champion or {"decision": "not comparable"})["decision"]
        if decision == "not comparable":
            reason = (versus_champion or {}).get("reason", "no comparable test predictions")
            blocking.append(f"{name} is not comparable: {reason}")
        elif decision == "loss" or (decision == "tie" and not promote_on_tie):
            suffix = "; a tie is not promoted" if decision == "tie" else ""
            blocking.append(_bootstrap_text(name, versus_champion) + suffix)
        else:
            notes.append(_bootstrap_text(name, versus_champion))
    if blocking:
        return {"alias": "challenger", "reasons": blocking + notes}
    return {
        "alias": "champion",
        "reasons": [f"macro-F1 {candidate_macro_f1:.4f} >= floor {min_macro_f1:.4f}", *notes],
    }
