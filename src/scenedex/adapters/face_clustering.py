"""``FaceClusterer`` with scikit-learn's DBSCAN (scikit-learn is installed with
sentence-transformers; it is imported on first use only).

DBSCAN needs no number of clusters, leaves faces in no dense group as noise, and gives the
same partition whatever the input order (up to a border face within reach of two clusters).
"""

from __future__ import annotations

import numpy as np

from scenedex.domain.face_clusters import ClusterSettings


class DbscanFaceClusterer:
    """``DBSCAN(eps=settings.max_distance, min_samples=settings.min_faces, metric="euclidean")``
    on unit face descriptors, one process thread (``n_jobs=1``): clustering runs per owner,
    in the background, and its neighbour search is cheap next to face detection."""

    def cluster(self, descriptors: np.ndarray, settings: ClusterSettings) -> np.ndarray:
        """Labels ``(n,)`` int64 for ``descriptors`` ``(n, 128)`` float32 (unit rows), ``-1`` for
        noise. Raises ``ValueError`` for settings of another algorithm or another shape."""
        if settings.algorithm != "dbscan":
            raise ValueError(f"settings are for {settings.algorithm!r}, not 'dbscan'")
        array = np.asarray(descriptors, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != 128:
            raise ValueError(f"descriptors must be (n, 128), got {array.shape}")
        if len(array) == 0:
            return np.zeros(0, dtype=np.int64)
        from sklearn.cluster import DBSCAN

        model = DBSCAN(
            eps=settings.max_distance, min_samples=settings.min_faces, metric="euclidean", n_jobs=1
        )
        return np.asarray(model.fit_predict(array), dtype=np.int64)
