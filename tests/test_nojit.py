"""The property tests again with NUMBA_DISABLE_JIT=1: the interpreted kernels must agree with the spec too."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
FILES = ["test_arith.py", "test_conv.py", "test_conv_int.py", "test_fp_kernels.py",
         # the layout, slicing, cast and matmul kernels (a few seconds each without JIT)
         "test_layout_ops.py", "test_slice_ops.py", "test_cast.py", "test_batch_matmul.py", "test_fc_asym.py",
         # the int16 (16x8) kernels (about a minute without JIT: every int16 input of LOGISTIC and TANH)
         "test_ops16.py",
         # SVDF and the keyword model's int16 QUANTIZE / SOFTMAX kernels
         "test_svdf.py", "test_keyword_ops.py",
         "test_transpose_conv.py", "test_lstm.py",
         # 16x8 kernels, INT4 and grouped convolution
         "test_conv16x8.py", "test_conv_int4_groups.py",
         # the audio front end's signal kernels (spec vs kernel)
         "test_signal_ops.py",
         # the float-shadow update kernel vs numpy
         "test_update_kernel.py"]


@pytest.mark.slow
@pytest.mark.parametrize("name", FILES)
def test_under_numba_disable_jit(name):
    if os.environ.get("NUMBA_DISABLE_JIT") == "1":
        pytest.skip("already running without JIT")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", HYPOTHESIS_PROFILE="nojit")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(HERE / name)],
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
