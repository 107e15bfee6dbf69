"""Training methods as objects, parsed once from the names users type (``tinyzo train --method``,
``tinyzo memory --method``, sweep specs).

Names:

* ``zo-<estimator>-<target>``: zeroth-order training; estimator ``rge`` (one-sided), ``spsa``
  (two-sided) or ``signspsa`` (Sign-m-SPSA); target ``weight`` (weight perturbation), ``node`` (node
  perturbation + one-layer local backward) or ``mixed`` (weight perturbation in the first trained
  layers, node after). ``zo-<target>`` is short for ``zo-rge-<target>``. A ``-layerwise`` suffix
  names the memory planner's schedule that reruns each query from the first trained layer (what
  :class:`tinyzo.zo.ZOTrainer` runs).
* ``bp``: back propagation on the int8 graph (:class:`tinyzo.bp.BPTrainer`).
* ``fp32``: the float twin trained in float32 (a baseline, ``tinyzo train`` only).
* ``inference``: no training (the memory planner's inference schedule).
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyzo.errors import InputError

__all__ = ["ESTIMATORS", "FAMILIES", "TARGETS", "Method", "parse_method"]

#: ZO estimators (internal names; the CLI spells sign-spsa "signspsa")
ESTIMATORS = ("rge", "spsa", "sign-spsa")
#: what a ZO method perturbs ("mixed": weight perturbation first, node perturbation after)
TARGETS = ("weight", "node", "mixed")
FAMILIES = ("zo", "bp", "fp32", "inference")


@dataclass(frozen=True)
class Method:
    """A parsed training method.

    Attributes:
        family: ``"zo"``, ``"bp"``, ``"fp32"`` or ``"inference"``.
        estimator: ZO only: ``"rge"``, ``"spsa"`` or ``"sign-spsa"`` (None otherwise).
        target: ZO only: ``"weight"``, ``"node"`` or ``"mixed"`` (None otherwise).
        layerwise: ZO only: the layer-wise schedule (each query reruns from the first trained layer).
    """

    family: str
    estimator: str | None = None
    target: str | None = None
    layerwise: bool = False

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise InputError(f"unknown method family {self.family!r}; families: {', '.join(FAMILIES)}")
        if self.family == "zo":
            if self.estimator not in ESTIMATORS or self.target not in TARGETS:
                raise InputError(f"a zo method needs an estimator in {ESTIMATORS} and a target in {TARGETS}, "
                                 f"got {self.estimator!r}, {self.target!r}")
        elif self.estimator is not None or self.target is not None or self.layerwise:
            raise InputError(f"{self.family} takes no estimator, target or layer-wise schedule")

    @property
    def name(self) -> str:
        """The canonical name, e.g. ``"zo-rge-node"``, ``"zo-signspsa-weight-layerwise"``, ``"bp"``."""
        if self.family != "zo":
            return self.family
        return f"zo-{self.estimator.replace('-', '')}-{self.target}" + ("-layerwise" if self.layerwise else "")

    def __str__(self) -> str:
        return self.name


def _names(families) -> str:
    parts = []
    if "inference" in families:
        parts.append("inference")
    if "bp" in families:
        parts.append("bp")
    if "fp32" in families:
        parts.append("fp32")
    if "zo" in families:
        parts.append("zo-<rge|spsa|signspsa>-<weight|node|mixed> (zo-<target>: rge)")
    return ", ".join(parts)


def parse_method(name, *, allow=FAMILIES, layerwise: bool = True) -> Method:
    """Parse a method name (module docstring) into a :class:`Method`.

    Args:
        name: the method's name, e.g. ``"zo-spsa-node"``, ``"bp"``.
        allow: the families accepted here (e.g. ``("zo", "bp", "fp32")`` for ``tinyzo train``).
        layerwise: whether a ``-layerwise`` suffix is accepted.

    Raises:
        InputError: an unknown name or a family not in ``allow``; the message lists the accepted names.
    """
    known = _names(allow) + (", each zo name optionally + -layerwise" if layerwise and "zo" in allow else "")
    if not isinstance(name, str):
        raise InputError(f"method must be a string ({known}), got {name!r}")
    if name in ("inference", "bp", "fp32"):
        if name in allow:
            return Method(name)
        raise InputError(f"method {name!r} is not accepted here; methods: {known}")
    base, lw = name, False
    if layerwise and base.endswith("-layerwise"):
        base, lw = base[: -len("-layerwise")], True
    parts = base.split("-")
    if "zo" in allow and len(parts) >= 2 and parts[0] == "zo" and parts[-1] in TARGETS:
        est = "-".join(parts[1:-1]).replace("signspsa", "sign-spsa") or "rge"
        if est in ESTIMATORS:
            return Method("zo", est, parts[-1], lw)
    raise InputError(f"unknown method {name!r}; methods: {known}")
