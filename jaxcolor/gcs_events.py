"""TensorBoard event files on gs:// written in segments, for tensorboardX's writer factory."""

from __future__ import annotations

import io

# A gs:// event file is one object, rewritten whole at every flush; past this size the next
# events go to a new object, so a flush uploads at most this much plus what is new.
GCS_SEGMENT_BYTES = 1 << 20


class SegmentedGCSRecordWriter:
    """tensorboardX's record writer for gs:// paths, in segments.

    tensorboardX's own (`record_writer.GCSRecordWriter`) keeps the whole event file in memory and
    uploads all of it at every flush, so with image grids a long run uploads quadratically
    growing bytes. This one uploads the current segment (GCS objects cannot be appended to) and,
    once that holds `GCS_SEGMENT_BYTES`, starts the next object, `<event file>.000001` and so
    on: names that sort in writing order, as TensorBoard reads a run's event files. Flushes come
    from tensorboardX's `EventsWriter` under its lock, between whole records, so no record is
    split across segments.
    """

    def __init__(self, path: str, segment_bytes: int = GCS_SEGMENT_BYTES):
        from google.cloud import storage

        bucket, _, self._name = path.removeprefix("gs://").partition("/")
        self._bucket = storage.Client().bucket(bucket)
        self._segment_bytes = segment_bytes
        self._segment = 0
        self._blob = self._bucket.blob(self._name)
        self._buffer = io.BytesIO()
        self._uploaded = 0  # bytes of the current segment already in its object

    def write(self, data: bytes) -> None:
        self._buffer.write(data)

    def flush(self) -> None:
        size = self._buffer.tell()
        if size == self._uploaded:
            return
        # Conditional on the generation, as tensorboardX does: safe to retry after a timeout.
        self._blob.upload_from_string(
            self._buffer.getvalue(), if_generation_match=self._blob.generation
        )
        self._uploaded = size
        if size >= self._segment_bytes:
            self._segment += 1
            self._blob = self._bucket.blob(f"{self._name}.{self._segment:06d}")
            self._buffer, self._uploaded = io.BytesIO(), 0

    def close(self) -> None:
        self.flush()


class SegmentedGCSRecordWriterFactory:
    """What tensorboardX's `register_writer_factory` expects for the gs:// prefix."""

    def open(self, path: str) -> SegmentedGCSRecordWriter:
        return SegmentedGCSRecordWriter(path)

    def directory_check(self, path: str) -> None:
        del path  # GCS has no directories to create
