"""Item 4b: float32 vs the ``mixed_bfloat16`` precision policy, per model.

Training on this CPU is compute-bound; where the CPU has bf16 units, Keras'
``mixed_bfloat16`` policy (bf16 compute, float32 weights, float32 outputs and
losses in colorkit's models) can train faster. Each model is trained with its
report's quick recipe (what ``train --model NAME`` runs on a CPU) at width
0.25 as in item 4, XLA off, at 64 px, from the same initial weights on the
same photos under both policies: images per second, and whether a short loss
curve stays with the
float32 one (compared over the steps both ran: a policy that is much slower
stops at the scale's time budget). This measures; it changes no default.
"""

from __future__ import annotations

import numpy as np

from bench.common import Comparison
from bench.training import GAN_GENERATOR, TrainingStep, measure

ITEM = "4b precision"
POLICIES = ("float32", "mixed_bfloat16")
#: The curves "match" when the bf16 curve's mean over its last third is within this of float32's.
CURVE_TOLERANCE = 0.10


def curve_gap(reference: list[float], other: list[float]) -> float:
    """Relative gap between two loss curves: the means of their last thirds, compared."""
    tail = max(1, len(reference) // 3)
    ours, theirs = np.mean(other[-tail:]), np.mean(reference[-tail:])
    return float(abs(ours - theirs) / max(abs(theirs), 1e-12))


def run(scale) -> list[dict]:
    """Images/s under each policy (float32 is the baseline), with the loss curves compared."""
    rows, size, batch = [], scale.precision_size, scale.batch_size
    for name in scale.precision_models:
        options = {"width": scale.precision_width}
        found = {
            policy: measure(lambda policy=policy: TrainingStep(name, size, batch, jit=False, policy=policy,
                                                               options=options), scale.precision_steps,
                            budget_s=scale.precision_budget_s)
            for policy in POLICIES
        }
        steps = min(len(result["losses"]) for result in found.values())  # a slow policy may stop early
        curves = {policy: found[policy]["losses"][:steps] for policy in POLICIES}
        gap = curve_gap(curves["float32"], curves["mixed_bfloat16"])
        label = f"{name}{' + patchgan (GAN step)' if name == GAN_GENERATOR else ''}"
        comparison = Comparison(ITEM, f"{label}, {size} px, width {scale.precision_width:g}, batch {batch}, jit off")
        for policy, role in zip(POLICIES, (comparison.baseline, comparison.kit)):
            result = found[policy]
            notes = f"loss {curves[policy][0]:.4g} -> {np.mean(curves[policy][-max(1, len(curves[policy]) // 3):]):.4g}"
            if policy != "float32":
                verdict = "matches" if gap <= CURVE_TOLERANCE else "does NOT match"
                notes += f"; {verdict} float32 ({gap:.1%} apart over the last third of {len(curves[policy])} steps)"
            role(f"{policy}: images/s", batch / result["timing"].median, "images/s", result["timing"], notes=notes)
        rows += comparison.rows
    return rows
