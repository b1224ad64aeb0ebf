"""Transports against real orchestrator readers: S3 (moto), file with stdio capture, threads, pacing."""

import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from _helpers import run_pipes, write_script

from dagster_pipes_spark import PipesBlobStoreMessageWriterChannel
from dagster_pipes_spark._transports.blob import READER_SLACK_SECONDS


def test_s3_context_and_messages(tmp_path, moto_s3):
    from dagster_aws.pipes import PipesS3ContextInjector, PipesS3MessageReader

    _, client, env = moto_s3
    script = write_script(
        tmp_path,
        """
        import boto3
        from dagster_pipes import PipesS3ContextLoader, PipesS3MessageWriter, open_dagster_pipes
        with open_dagster_pipes(context_loader=PipesS3ContextLoader(boto3.client("s3")),
                                message_writer=PipesS3MessageWriter(boto3.client("s3"), interval=1)) as pipes:
            big = pipes.get_extra("big")
            for i in range(3):
                pipes.report_custom_message({"i": i, "blob": "y" * 200_000})
            for i in range(300):
                pipes.log.info(f"line {i}")
            print("printed to stdout")
            pipes.report_asset_materialization(metadata={"extras_len": len(big)})
    """,
    )
    res = run_pipes(
        script,
        env=env,
        extras={"big": "z" * 300_000},
        context_injector=PipesS3ContextInjector(bucket="pipes", client=client),
        message_reader=PipesS3MessageReader(
            bucket="pipes", client=client, interval=1, include_stdio_in_messages=True
        ),
    )
    assert res.success, res.failure
    assert [m["i"] for m in res.custom_messages] == [0, 1, 2]
    assert all(len(m["blob"]) == 200_000 for m in res.custom_messages)
    assert [m for _, m in res.logs if m.startswith("line ")] == [f"line {i}" for i in range(300)]
    assert res.materializations["asset_a"].metadata["extras_len"].value == 300_000
    assert not res.warnings


def test_stdio_capture_with_file_writer(tmp_path, capfd):
    """include_stdio_in_messages: stdout/stderr (fd-level and a replaced sys.stdout) arrive before `closed`."""
    script = write_script(
        tmp_path,
        """
        import io, os, sys
        from dagster_pipes import open_dagster_pipes

        class NotebookOut(io.TextIOBase):   # like a notebook OutStream: not backed by fd 1
            def write(self, s):
                return len(s)
        real_stdout = sys.stdout
        sys.stdout = NotebookOut()
        with open_dagster_pipes() as pipes:
            print("notebook print")
            os.write(1, b"fd one\\n")
            os.write(2, b"fd two\\n")
            pipes.log.info("logged")
    """,
    )
    res = run_pipes(script, message_reader=dg.PipesTempFileMessageReader(include_stdio_in_messages=True))
    assert res.success, res.failure
    out = capfd.readouterr()
    assert "notebook print" in out.out and "fd one" in out.out  # the orchestrator re-emits stdout text
    assert "fd two" in out.err and "fd two" not in out.out  # streams are not mixed


def test_many_threads_never_tear_lines(tmp_path):
    script = write_script(
        tmp_path,
        """
        import threading
        from dagster_pipes import open_dagster_pipes
        with open_dagster_pipes() as pipes:
            def work(t):
                for i in range(200):
                    pipes.log.info(f"t{t}-{i}-" + "p" * (i * 37 % 5000))
                    pipes.report_custom_message({"t": t, "i": i, "pad": "q" * (i * 53 % 7000)})
            threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
            [th.start() for th in threads]
            [th.join() for th in threads]
            pipes.report_asset_materialization(metadata={"threads": 8})
    """,
    )
    res = run_pipes(script, keep_messages=True)
    assert res.success, res.failure
    assert len(res.custom_messages) == 1600
    for t in range(8):
        assert [m["i"] for m in res.custom_messages if m["t"] == t] == list(range(200))
    assert len([m for _, m in res.logs if m.startswith("t")]) == 1600


class _DirReader(dg.PipesBlobStoreMessageReader):
    """The real dagster blob-store reader algorithm, over a local directory of chunks."""

    def __init__(self, root: Path, interval: float):
        super().__init__(interval=interval)
        self.root = root

    @contextmanager
    def get_params(self):
        yield {"path": str(self.root)}

    def messages_are_readable(self, params):
        return True

    def download_messages_chunk(self, index, params):
        p = self.root / f"{index}.json"
        return p.read_text() if p.exists() else None

    def no_messages_debug_text(self) -> str:
        return "dir reader"


def test_paced_writer_never_outruns_the_stock_reader(tmp_path):
    """A 25 s run emitting continuously: the stock reader (interval 1) receives everything, `closed` included."""
    script = write_script(
        tmp_path,
        """
        import time
        from dagster_pipes import PipesBufferedFilesystemMessageWriterChannel, PipesBlobStoreMessageWriter, open_dagster_pipes

        class DirWriter(PipesBlobStoreMessageWriter):
            def make_channel(self, params):
                return PipesBufferedFilesystemMessageWriterChannel(params["path"], interval=self.interval)

        with open_dagster_pipes(message_writer=DirWriter(interval=1)) as pipes:
            end = time.time() + 25
            i = 0
            while time.time() < end:
                pipes.log.info(f"tick {i}")
                i += 1
                time.sleep(0.05)
            pipes.report_asset_materialization(metadata={"ticks": i})
    """,
    )
    res = run_pipes(script, message_reader=_DirReader(tmp_path / "chunks", interval=1))
    assert res.success, res.failure
    ticks = res.materializations["asset_a"].metadata["ticks"].value
    assert [m for _, m in res.logs if m.startswith("tick ")] == [f"tick {i}" for i in range(ticks)]
    assert not res.warnings
    chunks = sorted(int(p.stem) for p in (tmp_path / "chunks").glob("*.json"))
    assert chunks == list(range(1, len(chunks) + 1))  # contiguous, none skipped
    assert len(chunks) <= 25 / (1 + READER_SLACK_SECONDS) + 3


class _RecordingChannel(PipesBlobStoreMessageWriterChannel):
    def __init__(self, fail_first: int = 0, **kw):
        super().__init__(**kw)
        self.uploads: list[tuple[int, float, str]] = []
        self.fail_first = fail_first
        self.calls = 0

    def upload_messages_chunk(self, payload, index):
        self.calls += 1
        if self.calls <= self.fail_first:
            raise ConnectionError("transient")
        self.uploads.append((index, time.monotonic(), payload.read()))


def _msg(i: int, params: dict[str, Any] | None = None) -> Any:
    return {
        "__dagster_pipes_version": "0.1",
        "method": "log",
        "params": params if params is not None else {"message": f"m{i}", "level": "INFO"},
    }


def test_pacing_retries_and_packing():
    ch = _RecordingChannel(fail_first=2, interval=0.2)
    with ch.buffered_upload_loop():
        for i in range(40):
            ch.write_message(_msg(i))
            time.sleep(0.05)
    indices = [u[0] for u in ch.uploads]
    assert indices == list(range(1, len(indices) + 1))  # retried under the same index: no gap, no duplicate
    gaps = [b[1] - a[1] for a, b in zip(ch.uploads, ch.uploads[1:-1], strict=False)]
    assert all(g >= ch.upload_period - 0.05 for g in gaps), gaps
    received = [json.loads(line)["params"]["message"] for _, _, p in ch.uploads for line in p.split("\n")]
    assert received == [f"m{i}" for i in range(40)]


def test_chunk_cap_splits_between_messages_and_rejects_oversize():
    from dagster_pipes_spark import DagsterPipesError

    ch = _RecordingChannel(interval=100, max_chunk_bytes=1000)
    with ch.buffered_upload_loop():
        for i in range(60):
            ch.write_message(_msg(i))
        with pytest.raises(DagsterPipesError, match="exceeds this transport's chunk limit of 1,000 bytes"):
            ch.write_message(_msg(99, {"message": "x" * 2000, "level": "INFO"}))
    assert all(len(p) <= 1000 for _, _, p in ch.uploads)
    received = [json.loads(line)["params"]["message"] for _, _, p in ch.uploads for line in p.split("\n")]
    assert received == [f"m{i}" for i in range(60)]
    # everything pending at close is packed into as few chunks as the cap allows
    assert len(ch.uploads) == -(-sum(len(json.dumps(_msg(i))) + 1 for i in range(60)) // 1000)


def test_serialization_error_raises_at_call_site_not_in_thread():
    from dagster_pipes_spark import DagsterPipesError

    ch = _RecordingChannel(interval=0)
    with ch.buffered_upload_loop():
        with pytest.raises(DagsterPipesError, match="not JSON-serializable"):
            ch.write_message(_msg(0, {"payload": threading.Lock()}))
        ch.write_message(_msg(1))
    assert [json.loads(p)["params"]["message"] for _, _, p in ch.uploads] == ["m1"]


# ----------------------------------------------------------------------------- composition


class _ListSink:
    """A sink kept in the test: the channel is composed with it, not subclassed."""

    destination = "memory://test"

    def __init__(self, failures: list[BaseException] | None = None) -> None:
        self.failures = failures or []
        self.chunks: dict[int, bytes] = {}
        self.calls = 0

    def put_chunk(self, index: int, data: bytes) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.chunks[index] = data


def test_a_channel_composed_with_a_sink_delivers_in_order_and_retries_only_transient_errors(capfd):
    from dagster_pipes_spark import (
        ChunkSink,
        DeliveryOptions,
        PermanentStorageError,
        RetryPolicy,
        TransientStorageError,
    )

    sink = _ListSink([TransientStorageError("HTTP 503", status=503)])
    assert isinstance(sink, ChunkSink)
    delivery = DeliveryOptions(interval=0, retry=RetryPolicy(backoff=0.01))
    channel = PipesBlobStoreMessageWriterChannel(sink=sink, delivery=delivery)
    lines = [json.dumps(_msg(i)) for i in range(50)]
    with channel.buffered_upload_loop():
        for line in lines:
            channel.write_line(line)
    received = [ln for i in sorted(sink.chunks) for ln in sink.chunks[i].decode().splitlines()]
    assert received == lines
    assert sorted(sink.chunks) == list(range(1, len(sink.chunks) + 1))
    assert sink.calls == len(sink.chunks) + 1  # the one 503 was retried under the same index

    denied = _ListSink([PermanentStorageError("HTTP 403", status=403)])
    channel = PipesBlobStoreMessageWriterChannel(
        sink=denied, delivery=delivery.of(delivery, on_message_loss="warn")
    )
    with channel.buffered_upload_loop():
        channel.write_line(json.dumps(_msg(0)))
    assert denied.calls == 1 and not denied.chunks  # a permanent error is not retried
    assert "memory://test" in capfd.readouterr().err  # the sink names where the messages were going


def test_delivery_settings_and_a_channel_without_a_destination_are_checked():
    from dagster_pipes_spark import DagsterPipesError, DeliveryOptions

    with pytest.raises(DagsterPipesError, match="flush_timeout"):
        DeliveryOptions(flush_timeout=-1)
    with pytest.raises(DagsterPipesError, match=r"flush_timout.*expected.*flush_timeout"):
        DeliveryOptions.of(None, flush_timout=5)
    with pytest.raises(DagsterPipesError, match=r"nowhere to put chunks.*sink="):
        PipesBlobStoreMessageWriterChannel(interval=0)
    assert DeliveryOptions.of(DeliveryOptions(interval=3), flush_timeout=5) == DeliveryOptions(
        interval=3, flush_timeout=5
    )


def test_s3_errors_are_translated_at_the_sink(moto_s3, capfd):
    """A real S3 error through boto3 (a missing bucket: moto answers 404 NoSuchBucket) becomes the
    package's own error at the sink, and the policy does not retry it."""
    from dagster_pipes_spark import PipesS3MessageWriterChannel, StorageNotFoundError
    from dagster_pipes_spark._transports.retry import classify

    _, client, _ = moto_s3
    channel = PipesS3MessageWriterChannel(client, "no-such-bucket", "run", interval=0, on_message_loss="warn")
    assert channel.sink is not None
    with pytest.raises(StorageNotFoundError) as raised:
        channel.sink.put_chunk(1, b"{}\n")
    failure = classify(raised.value)
    assert (failure.kind, failure.status, type(failure.error).__name__) == ("not_found", 404, "NoSuchBucket")
    with channel.buffered_upload_loop():
        channel.write_line(json.dumps(_msg(0)))
    assert channel.upload_calls == 1
    assert "s3://no-such-bucket/run" in capfd.readouterr().err
