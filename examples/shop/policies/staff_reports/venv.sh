# Sourced by build.sh and test.sh. Makes sure .venv/ (inside this project) exists and
# holds componentize-py at exactly the pinned version; needs only python3 >= 3.11
# (`PYTHON=/path/to/python3.12 ./build.sh` picks another interpreter).
COMPONENTIZE_PY_VERSION=0.25.1

if [[ ! -f wit/policy.wit ]]; then
    echo "error: wit/policy.wit is missing; 'isthmus plugin new' writes it, or copy the gateway's WIT there" >&2
    exit 1
fi

if ! .venv/bin/componentize-py --version 2>/dev/null | grep -qx "componentize-py $COMPONENTIZE_PY_VERSION"; then
    python=${PYTHON:-python3}
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "error: need Python >= 3.11 ('$python' is $("$python" --version 2>&1 || echo missing)); set PYTHON=" >&2
        exit 1
    fi
    echo "creating .venv with componentize-py $COMPONENTIZE_PY_VERSION" >&2
    rm -rf .venv
    "$python" -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
fi
