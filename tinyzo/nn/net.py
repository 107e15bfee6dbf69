"""Net and Layer: a float network as a DAG of layers in execution order, with shape inference.

Layer kinds (``Layer.kind``) and their fields:

==============  =====================================================================================
``conv``        ``out_channels``, ``kernel`` (kh, kw), ``stride``, ``padding`` "SAME"/"VALID",
                ``dilation``, ``bn`` (batch norm after the conv), ``bias`` (only without bn),
                ``activation`` "none"/"relu"/"relu6"
``depthwise``   as conv; ``depth_multiplier`` (out_channels = in_channels * depth_multiplier)
``fc``          ``out_channels``; the input is flattened (any rank); ``bias`` True; ``activation``
``add``         two inputs of equal shape; ``activation``
``avgpool``     ``kernel``, ``stride``, ``padding`` (average over the window inside the image)
``maxpool``     ``kernel``, ``stride``, ``padding``
``gap``         global average pool: (H, W, C) -> (C,) (MEAN over H and W in the int8 graph)
``flatten``     (H, W, C) -> (H*W*C,)
``upsample``    nearest-neighbour resize by an integer ``factor`` (used on the input of small images)
==============  =====================================================================================

Every layer has a unique ``name`` and ``inputs``: names of earlier layers, or ``"input"`` for the
network input. Shapes are per sample, channels last: ``(H, W, C)`` for feature maps, ``(C,)``
after ``gap``/``flatten``/``fc``. SAME padding is TensorFlow's (the int8 graph's): the odd extra
row/column goes at the bottom/right.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tinyzo.errors import TinyzoError

LAYER_KINDS = ("conv", "depthwise", "fc", "add", "avgpool", "maxpool", "gap", "flatten", "upsample")
ACTIVATIONS = ("none", "relu", "relu6")


class NetError(TinyzoError):
    """A network description is inconsistent (unknown input, shapes that do not fit, bad field)."""


def _pair(v) -> tuple:
    if isinstance(v, int):
        return (v, v)
    t = tuple(int(a) for a in v)
    if len(t) != 2:
        raise NetError(f"expected an int or a pair, got {v!r}")
    return t


def conv_out_size(size: int, k: int, stride: int, dilation: int, padding: str) -> int:
    """Output length of a convolution/pool along one axis (TFLite ``ComputeOutSize``)."""
    eff = (k - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    if padding == "VALID":
        return (size - eff + stride) // stride if size >= eff else 0
    raise NetError(f"padding must be SAME or VALID, got {padding!r}")


@dataclass
class Layer:
    """One layer of a :class:`Net` (see the module docstring for the fields each kind uses)."""

    name: str
    kind: str
    inputs: tuple = ("input",)
    out_channels: int = 0
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    padding: str = "SAME"
    dilation: tuple = (1, 1)
    depth_multiplier: int = 1
    bn: bool = False
    bias: bool = True
    activation: str = "none"
    factor: int = 1
    # filled by Net.infer_shapes()
    in_shape: tuple = field(default=(), compare=False)
    out_shape: tuple = field(default=(), compare=False)

    def __post_init__(self):
        if self.kind not in LAYER_KINDS:
            raise NetError(f"layer {self.name!r}: unknown kind {self.kind!r}; kinds: {', '.join(LAYER_KINDS)}")
        if self.activation not in ACTIVATIONS:
            raise NetError(f"layer {self.name!r}: activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        self.inputs = (self.inputs,) if isinstance(self.inputs, str) else tuple(self.inputs)
        self.kernel = _pair(self.kernel)
        self.stride = _pair(self.stride)
        self.dilation = _pair(self.dilation)
        if self.bn:
            self.bias = False  # the batch norm's beta is the bias; folded into one at quantization

    @property
    def has_weights(self) -> bool:
        """True for conv, depthwise and fc layers."""
        return self.kind in ("conv", "depthwise", "fc")

    @property
    def macs(self) -> int:
        """Multiply-accumulates per sample: C_out * (C_in/groups) * kh * kw * H_out * W_out; in * out for fc."""
        if self.kind == "conv":
            return self.out_shape[0] * self.out_shape[1] * self.out_shape[2] * self.in_shape[2] * self.kernel[0] * self.kernel[1]
        if self.kind == "depthwise":
            return self.out_shape[0] * self.out_shape[1] * self.out_shape[2] * self.kernel[0] * self.kernel[1]
        if self.kind == "fc":
            n_in = 1
            for d in self.in_shape:
                n_in *= d
            return n_in * self.out_channels
        return 0

    def weight_shape(self) -> tuple:
        """Weight layout as the int8 engine's: conv OHWI, depthwise 1HWC, fc [O, K]; () without weights."""
        if self.kind == "conv":
            return (self.out_channels, self.kernel[0], self.kernel[1], self.in_shape[2])
        if self.kind == "depthwise":
            return (1, self.kernel[0], self.kernel[1], self.out_channels)
        if self.kind == "fc":
            n_in = 1
            for d in self.in_shape:
                n_in *= d
            return (self.out_channels, n_in)
        return ()


@dataclass
class Net:
    """A float network: input shape (H, W, C), class count and layers in execution order.

    The output is the last layer's output (logits). ``Net.infer_shapes`` runs in the constructor
    and raises :class:`NetError` on anything inconsistent.
    """

    name: str
    input_shape: tuple
    layers: list
    num_classes: int = 0

    def __post_init__(self):
        self.input_shape = tuple(int(d) for d in self.input_shape)
        self.layers = list(self.layers)
        self.infer_shapes()

    def layer(self, name: str) -> Layer:
        """The layer called ``name``."""
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise NetError(f"no layer named {name!r} in {self.name}")

    def infer_shapes(self) -> None:
        """Fill ``in_shape``/``out_shape`` of every layer; check names, inputs and sizes."""
        shapes = {"input": self.input_shape}
        for lay in self.layers:
            if lay.name in shapes:
                raise NetError(f"duplicate layer name {lay.name!r}")
            for i in lay.inputs:
                if i not in shapes:
                    raise NetError(f"layer {lay.name!r} reads {i!r}, which is not an earlier layer (or 'input')")
            ins = [shapes[i] for i in lay.inputs]
            if lay.kind == "add":
                if len(ins) != 2 or ins[0] != ins[1]:
                    raise NetError(f"add {lay.name!r} needs two inputs of equal shape, got {ins}")
            elif len(ins) != 1:
                raise NetError(f"layer {lay.name!r} ({lay.kind}) takes one input, got {len(ins)}")
            s = ins[0]
            lay.in_shape = s
            if lay.kind in ("conv", "depthwise", "avgpool", "maxpool", "upsample", "gap") and len(s) != 3:
                raise NetError(f"layer {lay.name!r} ({lay.kind}) needs an (H, W, C) input, got {s}")
            if lay.kind in ("conv", "depthwise", "avgpool", "maxpool"):
                oh = conv_out_size(s[0], lay.kernel[0], lay.stride[0], lay.dilation[0], lay.padding)
                ow = conv_out_size(s[1], lay.kernel[1], lay.stride[1], lay.dilation[1], lay.padding)
                if oh < 1 or ow < 1:
                    raise NetError(f"layer {lay.name!r}: kernel {lay.kernel} does not fit input {s} with {lay.padding}")
                if lay.kind == "conv":
                    if lay.out_channels < 1:
                        raise NetError(f"conv {lay.name!r} needs out_channels >= 1")
                    c = lay.out_channels
                elif lay.kind == "depthwise":
                    c = s[2] * lay.depth_multiplier
                    if lay.out_channels not in (0, c):
                        raise NetError(f"depthwise {lay.name!r}: out_channels {lay.out_channels} != {s[2]} x {lay.depth_multiplier}")
                    lay.out_channels = c
                else:
                    c = s[2]
                lay.out_shape = (oh, ow, c)
            elif lay.kind == "fc":
                if lay.out_channels < 1:
                    raise NetError(f"fc {lay.name!r} needs out_channels >= 1")
                lay.out_shape = (lay.out_channels,)
            elif lay.kind == "gap":
                lay.out_shape = (s[2],)
            elif lay.kind == "flatten":
                n = 1
                for d in s:
                    n *= d
                lay.out_shape = (n,)
            elif lay.kind == "upsample":
                if lay.factor < 1:
                    raise NetError(f"upsample {lay.name!r} needs factor >= 1")
                lay.out_shape = (s[0] * lay.factor, s[1] * lay.factor, s[2])
            else:  # add
                lay.out_shape = s
            shapes[lay.name] = lay.out_shape
        if not self.layers:
            raise NetError(f"{self.name} has no layers")

    @property
    def output_shape(self) -> tuple:
        """Shape of the network's output (the last layer's)."""
        return self.layers[-1].out_shape

    @property
    def macs(self) -> int:
        """Multiply-accumulates per sample (conv, depthwise, fc)."""
        return sum(lay.macs for lay in self.layers)

    def consumers(self, name: str) -> list:
        """Names of the layers that read ``name``."""
        return [lay.name for lay in self.layers if name in lay.inputs]

    def with_classes(self, num_classes: int) -> Net:
        """A copy whose last fc layer has ``num_classes`` outputs."""
        layers = [replace(lay) for lay in self.layers]
        if layers[-1].kind != "fc":
            raise NetError(f"{self.name}: the last layer is {layers[-1].kind}, not fc")
        layers[-1].out_channels = num_classes
        return Net(self.name, self.input_shape, layers, num_classes)

    def summary(self) -> str:
        """A text table: layer, kind, input and output shapes, MACs."""
        rows = [f"{self.name}: input {self.input_shape}, {self.macs:,} MACs"]
        for lay in self.layers:
            rows.append(f"  {lay.name:28s} {lay.kind:9s} {lay.in_shape!s:16s} -> {lay.out_shape!s:16s} {lay.macs:>12,}")
        return "\n".join(rows)
