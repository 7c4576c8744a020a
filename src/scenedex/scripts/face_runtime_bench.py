"""``python -m scenedex.scripts.face_runtime_bench [--media DIR] [--no-parity] [--no-candidates]``:
the face runtimes' figures stand-alone, no database (``scenedex.tools.bench_face_runtime.main``):
bare networks, face detector candidates on the labelled face check, parity with dlib. An entry
point: it reads the settings from the environment."""

from __future__ import annotations

import sys

from scenedex.settings import Settings
from scenedex.tools.bench_face_runtime import main

if __name__ == "__main__":
    main(sys.argv[1:], Settings())
