"""TFLite Micro's audio "signal" custom operators (``signal/micro/kernels/*.cc``), prepared and run.

The nine operators of TFLM's micro_speech front end (``audio_preprocessor_int8.tflite``), registered
as ``CUSTOM:<name>``: SignalWindow, SignalFftAutoScale, SignalRfft (int16), SignalEnergy,
SignalFilterBank, SignalFilterBankSquareRoot, SignalFilterBankSpectralSubtraction, SignalPCAN,
SignalFilterBankLog. Their parameters come from the operator's ``custom_options`` FlexBuffers map
(read by :mod:`tinyzo.io.tflite_read`; TFLM's ``FlexbufferWrapper`` reads the map's values by
position in key order, so the map must hold exactly the keys the converter writes, checked here).

Each ``prepare`` makes TFLM's Prepare checks (tensor types and ranks) and, where TFLM would read or
write out of bounds or shift by 32 bits or more (undefined in C), refuses the model with a one-line
:class:`~tinyzo.errors.UnsupportedOperatorError` instead. Ranks are TFLM's: a model without a batch
dimension is lifted (:mod:`tinyzo.ops.lift`), so TFLM's rank is ``len(shape) - 1`` there.

State: SignalFilterBankSpectralSubtraction keeps its noise estimate (uint32[num_channels]) in a
persistent buffer between invocations, zeroed by Prepare and by TFLM's ``Reset``; here it is an
operator state (:meth:`~tinyzo.ops.base.PreparedOp.state_buffers`) the Model keeps per stream.

Definitions: :mod:`tinyzo.spec.signal`; kernels: :mod:`tinyzo.kernels.signal`.
"""

from __future__ import annotations

import math

import numpy as np

from tinyzo.errors import InputError
from tinyzo.kernels import signal as K
from tinyzo.ops.base import OPERATOR_ARITY, PreparedOp, register
from tinyzo.spec.signal import LOG_LUT, kiss_factors, kiss_fftr_twiddles, kiss_twiddles

__all__ = ["SIGNAL_OPS", "kiss_plan"]

I16, I32, U32, U64 = (np.dtype(d) for d in (np.int16, np.int32, np.uint32, np.uint64))

#: The signal operators: custom code -> (fewest inputs, most inputs, outputs).
SIGNAL_OPS = {
    "SignalWindow": (2, 2, 1),
    "SignalFftAutoScale": (1, 1, 2),
    "SignalRfft": (1, 1, 1),
    "SignalEnergy": (1, 1, 1),
    "SignalFilterBank": (6, 6, 1),
    "SignalFilterBankSquareRoot": (2, 2, 1),
    "SignalFilterBankSpectralSubtraction": (1, 1, 2),
    "SignalPCAN": (3, 3, 1),
    "SignalFilterBankLog": (1, 1, 1),
}
for _name, _arity in SIGNAL_OPS.items():
    OPERATOR_ARITY["CUSTOM:" + _name] = _arity

#: TensorType code of INT16 in the RFFT's ``T`` option (TFLite schema).
TENSOR_TYPE_INT16 = 7
#: Largest FFT length accepted (TFLM has no limit; 2**16 bins is far beyond any front end).
MAX_FFT_LENGTH = 1 << 16


def kiss_plan(nfft: int) -> tuple:
    """The tables :func:`tinyzo.kernels.signal.kiss_fft_s16` runs a complex FFT of length ``nfft`` with:
    ``(perm int64[nfft], stages int64[S, 4] (p, m, fstride, blocks), twiddles re, im int64[nfft])``.

    ``perm`` is where ``kf_work``'s recursion reads each leaf from; ``stages`` its butterflies,
    stage s running ``fstride_s`` blocks of ``p_s * m_s`` points with twiddle stride ``fstride_s``.
    """
    factors = kiss_factors(nfft)
    stages = []
    fstride = 1
    for s in range(0, len(factors), 2):
        p, m = factors[s], factors[s + 1]
        stages.append((p, m, fstride, fstride))
        fstride *= p
    perm = np.empty(nfft, np.int64)

    def walk(base, xpos, fstride, s):
        p, m = factors[2 * s], factors[2 * s + 1]
        if m == 1:
            for k in range(p):
                perm[base + k] = xpos + k * fstride
        else:
            for k in range(p):
                walk(base + k * m, xpos + k * fstride, fstride * p, s + 1)

    walk(0, 0, 1, 0)
    tw = kiss_twiddles(nfft)
    return (perm, np.array(stages, np.int64).reshape(-1, 4), np.array([t[0] for t in tw], np.int64),
            np.array([t[1] for t in tw], np.int64))


class _SignalOp(PreparedOp):
    """Shared checks: custom options, TFLM ranks and types, 2-D run-time views."""

    #: the option keys the converter writes (TFLM reads them by position in this sorted order)
    option_keys: tuple = ()

    def check_options(self):
        keys = tuple(sorted(self.op.options))
        if keys != tuple(sorted(self.option_keys)):
            self.fail(f"custom options hold keys {list(keys)}; TFLM reads {list(self.option_keys)} by position, so "
                      "the file must hold exactly these")

    def tflm_rank(self, t) -> int:
        """The tensor's rank as TFLM sees it (without the batch dimension tinyzo added to run-time tensors
        when lifting; constants keep their shape)."""
        return len(t.shape) - (1 if self.model.lifted and not t.is_constant else 0)

    def expect(self, t, role: str, dtype, rank=None, constant: bool = False):
        if t.dtype != dtype:
            self.fail(f"{role} {t.name!r} is {t.dtype}; TFLM's {self.op.opcode[7:]} takes {np.dtype(dtype).name}")
        if rank is not None and self.tflm_rank(t) != rank:
            self.fail(f"{role} {t.name!r} has shape {list(t.shape)}; TFLM requires rank {rank}")
        if constant and not t.is_constant:
            self.fail(f"{role} {t.name!r} must be a constant tensor here")
        if not t.is_constant:
            self.require_batch_one(t, role)

    @staticmethod
    def size(t) -> int:
        """Elements of one sample (a constant: all of it)."""
        shape = t.shape if t.is_constant else t.shape[1:]
        return int(math.prod(shape))

    def out_array(self, k: int, n: int) -> np.ndarray:
        t = self.tensor(k, output=True)
        return np.empty((n,) + tuple(t.shape[1:]), dtype=t.dtype)

    @staticmethod
    def rows(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x).reshape(x.shape[0], -1)


@register("CUSTOM:SignalWindow")
class SignalWindow(_SignalOp):
    """``SignalWindow``: int16 samples times the int16 window, ``>> shift``, saturated (``window.cc``)."""

    option_keys = ("shift",)

    def prepare(self):
        self.check_options()
        x, w, y = self.tensor(0), self.tensor(1), self.tensor(0, output=True)
        self.expect(x, "input", I16)
        self.expect(w, "weights", I16, rank=1, constant=True)
        self.expect(y, "output", I16)
        if self.tflm_rank(x) < 1 or self.tflm_rank(x) != self.tflm_rank(y):
            self.fail("input and output must have the same rank >= 1 (TFLM's check)")
        self.shift = self.int_option("shift", 0, lo=0, hi=31)
        self.weights = np.ascontiguousarray(w.data, dtype=np.int16).reshape(-1)
        n, nw = self.size(x), self.weights.size
        if nw == 0 or n % nw or self.size(y) != n:
            self.fail(f"the input's {n} samples must be a whole number of {nw}-sample windows and fill the output "
                      f"({self.size(y)}); TFLM would read or write out of bounds")

    def compute(self, x):
        out = self.out_array(0, x.shape[0])
        K.window_s16(self.rows(x), self.weights, self.shift, out.reshape(x.shape[0], -1))
        return out


@register("CUSTOM:SignalFftAutoScale")
class SignalFftAutoScale(_SignalOp):
    """``SignalFftAutoScale``: shift the frame left to use int16's full range; output the shift (``fft_auto_scale*.cc``)."""

    def prepare(self):
        self.check_options()
        x, y, s = self.tensor(0), self.tensor(0, output=True), self.tensor(1, output=True)
        self.expect(x, "input", I16, rank=1)
        self.expect(y, "output", I16, rank=1)
        self.expect(s, "scale_bits", I32, rank=0)
        if self.size(y) != self.size(x):
            self.fail(f"output length {self.size(y)} differs from the input's {self.size(x)} (TFLM reads the "
                      "output's length from the input)")

    def compute(self, x):
        n = x.shape[0]
        out, bits = self.out_array(0, n), self.out_array(1, n)
        K.fft_auto_scale_s16(self.rows(x), out.reshape(n, -1), bits.reshape(n))
        return out, bits


@register("CUSTOM:SignalRfft")
class SignalRfft(_SignalOp):
    """``SignalRfft`` (int16, KISS FFT fixed point): the real FFT of each zero-padded row (``rfft.cc``).

    ``fft_length`` must be even with half-length factors 2, 3, 4 and 5 only: TFLM's patched KISS
    FFT cannot allocate the scratch its generic butterfly needs (its ``KISS_FFT_TMP_ALLOC``
    returns NULL). int32 and float RFFT are refused.
    """

    option_keys = ("T", "fft_length")

    def prepare(self):
        self.check_options()
        if self.int_option("T", 0, lo=-(2**31)) != TENSOR_TYPE_INT16:
            self.fail(f"RFFT type T = {self.option('T')} is not supported; tinyzo runs the int16 RFFT (T = 7)")
        x, y = self.tensor(0), self.tensor(0, output=True)
        self.expect(x, "input", I16)
        self.expect(y, "output", I16)
        if self.tflm_rank(x) < 1 or self.tflm_rank(x) != self.tflm_rank(y):
            self.fail("input and output must have the same rank >= 1 (TFLM's check)")
        self.fft_length = self.int_option("fft_length", 0, lo=4, hi=MAX_FFT_LENGTH)
        ncfft = self.fft_length // 2
        m = ncfft
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if self.fft_length % 2 or m != 1:
            self.fail(f"fft_length {self.fft_length} must be even with fft_length / 2 a product of 2, 3 and 5 "
                      "(TFLM's KISS FFT build crashes on other lengths)")
        self.in_len = x.shape[-1]
        rows = self.size(x) // self.in_len if self.in_len else 0
        if self.in_len > self.fft_length or self.in_len == 0:
            self.fail(f"the input rows have {self.in_len} samples, outside 1..fft_length ({self.fft_length})")
        if y.shape[-1] != 2 * (ncfft + 1) or self.size(y) != rows * y.shape[-1]:
            self.fail(f"output shape {list(y.shape)} must end in {2 * (ncfft + 1)} (fft_length / 2 + 1 complex "
                      f"values) with one row per input row; TFLM would write out of bounds")
        self.perm, self.stages, self.twr, self.twi = kiss_plan(ncfft)
        sup = kiss_fftr_twiddles(self.fft_length)
        self.sup_r = np.array([t[0] for t in sup], np.int64)
        self.sup_i = np.array([t[1] for t in sup], np.int64)

    def buffer_bytes(self, n: int) -> dict:
        out = super().buffer_bytes(n)
        out["work"] = 8 * 4 * (self.fft_length // 2)
        return out

    def tflm_scratch(self) -> list:
        """TFLM's arena scratch: the zero-padded frame, ``fft_length * sizeof(int16)``."""
        return [2 * self.fft_length]

    def tflm_persistent(self) -> dict:
        """TFLM's persistent allocations beyond the parameters: KISS FFT's real-FFT state
        (``kiss_fftr_alloc``'s ``memneeded`` on a 64-bit build: header, complex state, twiddles)."""
        ncfft = self.fft_length // 2
        sub = 8 + 4 * 64 + 4 * ncfft  # kiss_fft_state: nfft, inverse, factors[64], twiddles[nfft] (int16 pairs)
        return {"kiss_fftr state": 24 + sub + 4 * (ncfft * 3 // 2)}

    def compute(self, x):
        n = x.shape[0]
        out = self.out_array(0, n)
        xr = np.ascontiguousarray(x).reshape(-1, self.in_len)
        work = self.scratch("work", (4, self.fft_length // 2), np.int64)
        K.rfft_s16(xr, self.fft_length, self.perm, self.stages, self.twr, self.twi, self.sup_r, self.sup_i, work,
                   out.reshape(xr.shape[0], -1))
        return out


@register("CUSTOM:SignalEnergy")
class SignalEnergy(_SignalOp):
    """``SignalEnergy``: ``re**2 + im**2`` (uint32) of bins ``start_index..end_index - 1`` (``energy.cc``).

    TFLM leaves the other bins of its output unwritten (whatever the arena held); tinyzo writes 0
    there. Only the computed bins are part of the bit-exact contract.
    """

    option_keys = ("end_index", "start_index")

    def prepare(self):
        self.check_options()
        x, y = self.tensor(0), self.tensor(0, output=True)
        self.expect(x, "input", I16, rank=1)
        self.expect(y, "output", U32, rank=1)
        self.start = self.int_option("start_index", 0, lo=-(2**31))
        self.end = self.int_option("end_index", 0, lo=-(2**31))
        if self.start < self.end and (self.start < 0 or self.end > min(self.size(y), self.size(x) // 2)):
            self.fail(f"bins {self.start}..{self.end - 1} are outside the input's {self.size(x) // 2} complex values "
                      f"or the output's {self.size(y)}; TFLM would read or write out of bounds")
        if self.size(y) != self.size(x) // 2:
            self.fail(f"output length {self.size(y)} must be half the input's {self.size(x)} (one per complex bin)")

    def compute(self, x):
        n = x.shape[0]
        out = self.out_array(0, n)
        K.energy_u32(self.rows(x), self.start, self.end, out.reshape(n, -1))
        return out


@register("CUSTOM:SignalFilterBank")
class SignalFilterBank(_SignalOp):
    """``SignalFilterBank``: triangular mel channels as uint64 weighted sums of the energies (``filter_bank.cc``).

    Inputs: energies uint32, weights, unweights, channel frequency starts, channel weight starts,
    channel widths (int16 constants); ``num_channels + 1`` accumulators, the first dropped.
    """

    option_keys = ("num_channels",)

    def prepare(self):
        self.check_options()
        x, y = self.tensor(0), self.tensor(0, output=True)
        self.expect(x, "input", U32, rank=1)
        self.expect(y, "output", U64, rank=1)
        names = ("weights", "unweights", "channel_frequency_starts", "channel_weight_starts", "channel_widths")
        arrays = []
        for k, role in enumerate(names, start=1):
            t = self.tensor(k)
            self.expect(t, role, I16, rank=1, constant=True)
            arrays.append(np.ascontiguousarray(t.data, dtype=np.int16).reshape(-1))
        self.weights, self.unweights, self.freq_starts, self.weight_starts, self.widths = arrays
        self.num_channels = self.int_option("num_channels", 0, lo=1, hi=1 << 16)
        c = self.num_channels
        if min(a.size for a in arrays[2:]) < c + 1:
            self.fail(f"the channel tables must hold num_channels + 1 = {c + 1} entries")
        nx = self.size(x)
        for i in range(c + 1):
            f0, w0, width = int(self.freq_starts[i]), int(self.weight_starts[i]), int(self.widths[i])
            if width > 0 and (f0 < 0 or w0 < 0 or f0 + width > nx
                              or w0 + width > min(self.weights.size, self.unweights.size)):
                self.fail(f"channel {i} reads energies {f0}..{f0 + width - 1} (of {nx}) and weights "
                          f"{w0}..{w0 + width - 1} (of {min(self.weights.size, self.unweights.size)}): out of bounds")
        if self.size(y) != c:
            self.fail(f"output length {self.size(y)} differs from num_channels {c}")

    def tflm_persistent(self) -> dict:
        """TFLM's persistent work area: ``(num_channels + 1)`` uint64 accumulators."""
        return {"work_area": 8 * (self.num_channels + 1)}

    def compute(self, x):
        n = x.shape[0]
        out = self.out_array(0, n)
        K.filter_bank_u64(self.rows(x), self.weights, self.unweights, self.freq_starts, self.weight_starts,
                          self.widths, self.num_channels, out.reshape(n, -1))
        return out


@register("CUSTOM:SignalFilterBankSquareRoot")
class SignalFilterBankSquareRoot(_SignalOp):
    """``SignalFilterBankSquareRoot``: ``Sqrt64(x) >> scale_bits`` (uint64 -> uint32, ``filter_bank_square_root.cc``).

    ``scale_bits`` (input 1, int32 scalar, normally SignalFftAutoScale's second output) must be in
    [0, 31] (a larger or negative shift is undefined in C): refused at run time otherwise.
    """

    def prepare(self):
        self.check_options()
        x, s, y = self.tensor(0), self.tensor(1), self.tensor(0, output=True)
        self.expect(x, "input", U64, rank=1)
        self.expect(s, "scale_bits", I32, rank=0)
        self.expect(y, "output", U32, rank=1)
        if self.size(y) != self.size(x):
            self.fail(f"output length {self.size(y)} differs from the input's {self.size(x)}")
        self.const_bits = None if not s.is_constant else int(np.asarray(s.data).reshape(-1)[0])
        if self.const_bits is not None and not 0 <= self.const_bits <= 31:
            self.fail(f"constant scale_bits {self.const_bits} is outside [0, 31]")

    def compute(self, x, bits=None):
        n = x.shape[0]
        bits = np.full(n, self.const_bits, np.int32) if bits is None else np.ascontiguousarray(bits).reshape(n)
        if bits.size and (bits.min() < 0 or bits.max() > 31):
            raise InputError(f"operator {self.index} (SignalFilterBankSquareRoot): scale_bits {int(bits.min())}.."
                             f"{int(bits.max())} outside [0, 31] (a shift undefined in C)")
        out = self.out_array(0, n)
        K.filter_bank_sqrt_u32(self.rows(x), bits.astype(np.int32), out.reshape(n, -1))
        return out


@register("CUSTOM:SignalFilterBankSpectralSubtraction")
class SignalFilterBankSpectralSubtraction(_SignalOp):
    """``SignalFilterBankSpectralSubtraction``: noise reduction with a running noise estimate (stateful).

    Outputs the cleaned channels and a copy of the noise estimate (which SignalPCAN reads). The
    estimate (uint32[num_channels] per stream) persists between calls and starts at 0.
    """

    option_keys = ("alternate_one_minus_smoothing", "alternate_smoothing", "clamping", "min_signal_remaining",
                   "num_channels", "one_minus_smoothing", "smoothing", "smoothing_bits", "spectral_subtraction_bits")

    def prepare(self):
        self.check_options()
        x, y, ne = self.tensor(0), self.tensor(0, output=True), self.tensor(1, output=True)
        self.expect(x, "input", U32, rank=1)
        self.expect(y, "output", U32, rank=1)
        self.expect(ne, "noise_estimate", U32, rank=1)
        lo = -(2**31)
        # int32 in the file, held as uint32 by TFLM
        self.coeffs = {k: self.int_option(k, 0, lo=lo) & 0xFFFFFFFF
                       for k in ("smoothing", "one_minus_smoothing", "alternate_smoothing",
                                 "alternate_one_minus_smoothing", "min_signal_remaining")}
        self.clamping = self.bool_option("clamping", False)
        self.smoothing_bits = self.int_option("smoothing_bits", 0, lo=0, hi=31)
        self.subtraction_bits = self.int_option("spectral_subtraction_bits", 0, lo=0, hi=63)
        self.num_channels = self.int_option("num_channels", 0, lo=1, hi=1 << 16)
        c = self.num_channels
        if self.size(x) != c or self.size(y) != c or self.size(ne) != c:
            self.fail(f"input, output and noise estimate must hold num_channels = {c} values, got "
                      f"{self.size(x)}, {self.size(y)}, {self.size(ne)}")

    def state_buffers(self) -> dict:
        return {"noise_estimate": ((self.num_channels,), U32)}

    def compute(self, x, state):
        n = x.shape[0]
        out, ne_out = self.out_array(0, n), self.out_array(1, n)
        c = self.coeffs
        K.spectral_subtraction_u32(self.rows(x), state["noise_estimate"], c["smoothing"], c["one_minus_smoothing"],
                                   c["alternate_smoothing"], c["alternate_one_minus_smoothing"],
                                   c["min_signal_remaining"], self.smoothing_bits, self.subtraction_bits,
                                   self.clamping, out.reshape(n, -1), ne_out.reshape(n, -1))
        return out, ne_out


@register("CUSTOM:SignalPCAN")
class SignalPCAN(_SignalOp):
    """``SignalPCAN``: per-channel energy normalization with a gain table (``pcan.cc``, ``pcan_argc_fixed.cc``)."""

    option_keys = ("snr_shift",)
    #: entries of the gain table TFLM may read (``4 * 32 - 6 + 2`` for a noise estimate of 32 bits)
    LUT_MIN = 125

    def prepare(self):
        self.check_options()
        x, ne, lut, y = self.tensor(0), self.tensor(1), self.tensor(2), self.tensor(0, output=True)
        self.expect(x, "input", U32, rank=1)
        self.expect(ne, "noise_estimate", U32, rank=1)
        self.expect(lut, "gain_lut", I16, rank=1, constant=True)
        self.expect(y, "output", U32, rank=1)
        self.lut = np.ascontiguousarray(lut.data, dtype=np.int16).reshape(-1)
        if self.lut.size < self.LUT_MIN:
            self.fail(f"gain_lut has {self.lut.size} entries; TFLM may read {self.LUT_MIN}")
        self.snr_shift = self.int_option("snr_shift", 0, lo=0, hi=63)
        if self.size(ne) != self.size(x) or self.size(y) != self.size(x):
            self.fail(f"input, noise estimate and output lengths {self.size(x)}, {self.size(ne)}, {self.size(y)} "
                      "must be equal")

    def compute(self, x, noise):
        n = x.shape[0]
        out = self.out_array(0, n)
        K.pcan_u32(self.rows(x), self.rows(noise), self.lut, self.snr_shift, out.reshape(n, -1))
        return out


@register("CUSTOM:SignalFilterBankLog")
class SignalFilterBankLog(_SignalOp):
    """``SignalFilterBankLog``: ``min(output_scale * ln(x << input_correction_bits), 32767)`` in fixed point."""

    option_keys = ("input_correction_bits", "output_scale")

    def prepare(self):
        self.check_options()
        x, y = self.tensor(0), self.tensor(0, output=True)
        self.expect(x, "input", U32, rank=1)
        self.expect(y, "output", I16, rank=1)
        self.correction_bits = self.int_option("input_correction_bits", 0, lo=0, hi=31)
        self.output_scale = self.int_option("output_scale", 0, lo=-(2**31)) & 0xFFFFFFFF
        if self.size(y) != self.size(x):
            self.fail(f"output length {self.size(y)} differs from the input's {self.size(x)}")
        self.log_lut = np.array(LOG_LUT, np.int64)

    def compute(self, x):
        n = x.shape[0]
        out = self.out_array(0, n)
        K.filter_bank_log_s16(self.rows(x), self.output_scale, self.correction_bits, self.log_lut, out.reshape(n, -1))
        return out
