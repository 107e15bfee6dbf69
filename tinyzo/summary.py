"""Model summary: the operator table and totals printed by ``tinyzo info``."""

from __future__ import annotations


def _fmt_shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def _fmt_quant(t) -> str:
    q = t.quant
    if q is None:
        return "-"
    if q.per_channel:
        return f"per-ch[{q.scale.size}] s={q.scale.min():.3g}..{q.scale.max():.3g}"
    return f"s={q.scale[0]:.4g} zp={int(q.zero_point[0])}"


def operator_rows(model) -> list[dict]:
    """One dict per operator: index, op, input/output shapes, MACs, parameter count, output quantization.

    Shapes are batch-1 shapes as stored in the model; ``params`` counts the
    elements of the constant inputs (weights, biases), ``param_bytes`` their bytes.
    """
    rows = []
    for i, (op, prep) in enumerate(zip(model.operators, model.prepared)):
        ins = [model.tensors[t] for t in op.inputs if t != -1]
        act_in = [t for t in ins if not t.is_constant]
        consts = [t for t in ins if t.is_constant and t.quant is not None]  # weights and biases, not shape operands
        outs = [model.tensors[t] for t in op.outputs]
        rows.append(
            dict(
                index=i,
                op=op.opcode,
                inputs=", ".join(_fmt_shape(t.shape) for t in act_in),
                outputs=", ".join(_fmt_shape(t.shape) for t in outs),
                macs=int(prep.macs()),
                params=int(sum(t.data.size for t in consts)),
                param_bytes=int(sum(t.data.nbytes for t in consts)),
                quant=_fmt_quant(outs[0]) if outs else "-",
            )
        )
    return rows


def totals(model) -> dict:
    """Totals of a model (batch 1).

    Returns a dict with ``macs``, ``weight_bytes`` (quantized constant tensors: weights and biases),
    ``activation_bytes`` (sum of every non-constant tensor),
    ``largest_layer_bytes`` (max over operators of its activation inputs plus
    outputs, a lower bound of any arena), ``operators`` and ``tensors``.
    """
    rows = operator_rows(model)
    act = [t for t in model.tensors if not t.is_constant]
    largest = 0
    for op in model.operators:
        ts = {t for t in op.inputs + op.outputs if t != -1 and not model.tensors[t].is_constant}
        largest = max(largest, sum(model.tensors[t].nbytes for t in ts))
    return dict(
        macs=sum(r["macs"] for r in rows),
        weight_bytes=int(sum(t.data.nbytes for t in model.tensors if t.is_constant and t.quant is not None)),
        activation_bytes=int(sum(t.nbytes for t in act)),
        largest_layer_bytes=int(largest),
        operators=len(model.operators),
        tensors=len(model.tensors),
    )


def format_info(model) -> str:
    """The text printed by ``tinyzo info``: a table of operators then the totals."""
    rows = operator_rows(model)
    head = ["#", "op", "input", "output", "MACs", "params", "output quant"]
    body = [[str(r["index"]), r["op"], r["inputs"], r["outputs"], f"{r['macs']:,}", f"{r['params']:,}", r["quant"]]
            for r in rows]
    widths = [max(len(h), *(len(b[k]) for b in body)) if body else len(h) for k, h in enumerate(head)]
    right = {0, 4, 5}

    def line(cells):
        return "  ".join(c.rjust(w) if k in right else c.ljust(w) for k, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [f"model: {model.name or '(unnamed)'}   rounding: {model.rounding}"]
    for k, t in enumerate(model.input_details):
        out.append(f"input {k}: {t.name} {_fmt_shape(t.shape)} {t.dtype} {_fmt_quant(t)}")
    for k, t in enumerate(model.output_details):
        out.append(f"output {k}: {t.name} {_fmt_shape(t.shape)} {t.dtype} {_fmt_quant(t)}")
    out.append("")
    out.append(line(head))
    out.append(line(["-" * w for w in widths]))
    out.extend(line(b) for b in body)
    tot = totals(model)
    out.append("")
    out.append(f"operators: {tot['operators']}   tensors: {tot['tensors']}")
    out.append(f"MACs: {tot['macs']:,}")
    out.append(f"weight bytes: {tot['weight_bytes']:,}")
    out.append(f"activation bytes: {tot['activation_bytes']:,} (all activation tensors, batch 1); "
               f"largest layer in+out: {tot['largest_layer_bytes']:,}")
    return "\n".join(out)
