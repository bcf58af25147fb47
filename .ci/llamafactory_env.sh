#!/usr/bin/env bash
# Creates .lfvenv: the minimal CPU install of LLaMA-Factory 0.9.5 + DeepSpeed 0.19.8 that
# tests/integration/test_llamafactory_validation.py uses to validate emitted configs with the
# real parsers. Recipe: shared/reference/schemas.md A.4 ("Minimal install"). torch is pinned to
# the CPU wheel 2.13.0 (pip finds it through find-links /opt/wheels); an unpinned torch would
# pull gigabytes of CUDA packages. Idempotent: a complete .lfvenv is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.lfvenv
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"  # the torch 2.13.0 CPU wheel here is cp311

# The memory levers' packages (issue 16): LLaMA-Factory's parser requires them to be installed
# (`check_version(..., mandatory=True)`, hparams/parser.py:218-241) and reads only their metadata,
# so they go, without dependencies (no triton, no CUDA), into .lfextras on the validator's PYTHONPATH.
install_extras() {
    if [ ! -d .lfextras ]; then
        "$VENV/bin/python" -m pip install -q --no-deps --target .lfextras liger-kernel==0.8.5 galore-torch==1.0 \
            apollo-torch==1.0.3 badam==1.4 adam-mini==1.1.1
    fi
}

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<'PY' 2>/dev/null
from importlib.metadata import version
assert version("llamafactory") == "0.9.5"
assert version("deepspeed") == "0.19.8"
assert version("torch").startswith("2.13.0")
assert version("transformers") == "5.6.0"
PY
then
    echo ".lfvenv is complete (llamafactory 0.9.5, deepspeed 0.19.8)"
    install_extras
    exit 0
fi

start=$(date +%s)
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
CONSTRAINTS="$VENV/constraints.txt"
echo "torch==2.13.0" > "$CONSTRAINTS"
"$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS" torch==2.13.0 transformers==5.6.0 datasets==4.0.0 \
    peft==0.18.1 accelerate==1.11.0 trl==0.24.0 omegaconf pyyaml matplotlib
"$VENV/bin/python" -m pip install -q --no-deps llamafactory==0.9.5
# DeepSpeed's sdist builds no CUDA ops with DS_BUILD_OPS=0; without build isolation it sees torch.
DS_BUILD_OPS=0 "$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS" --no-build-isolation deepspeed==0.19.8
echo ".lfvenv ready in $(( $(date +%s) - start )) s"
install_extras
