"""``shipyard stream``: run a consumer, see its status, list and replay dead letters.

The streaming core (``shipyard.stream``) sits below the server; this module wires it to the
server's parts: ``RegistrySource`` follows the alias, and ``OnnxPredictor`` (with the native
fallback) is the same fast path ``shipyard serve`` uses.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import console, err_console, open_workspace
from shipyard.cli.options import not_nan
from shipyard.cli.project import project_dir
from shipyard.cli.render import JsonOption, number, when, write_json
from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Callable

    from shipyard.registry.bundle import Bundle
    from shipyard.registry.inference import Predictions
    from shipyard.registry.input_contract import ModelInput
    from shipyard.stream.config import StreamConfig

app = typer.Typer(
    help="Score events from Redis Streams: run consumers, see status, handle dead letters.",
    no_args_is_help=True,
)


def _config(ctx: typer.Context) -> StreamConfig:
    from shipyard.stream.config import load_stream_config

    return load_stream_config(project_dir(ctx))


def _redis_only(ctx: typer.Context, command: str) -> StreamConfig:
    config = _config(ctx)
    if config.url.startswith("nats://"):
        raise InvalidArgument(
            f"{command} reads Redis streams; on NATS, read the dead-letter subject "
            f"{config.dead_letters} with the nats CLI (not built into shipyard yet)"
        )
    return config


def _labels_consumer(config: StreamConfig, backend: Any, logs: Path) -> Any:
    """The consumer of the labels stream, storing beside the prediction log."""
    from shipyard.monitor.feedback import FeedbackStore
    from shipyard.stream.labels import LabelsConsumer

    if config.url.startswith("nats://"):
        raise InvalidArgument("a labels stream is read from Redis only (not yet from NATS)")
    return LabelsConsumer(
        backend.client, config, FeedbackStore.beside(logs), consumer=backend.consumer
    )


def fast_predictor(bundle: Bundle) -> tuple[Callable[[ModelInput], Predictions], str]:
    """The server's engine choice: verified ONNX when the export agrees, else native."""
    from shipyard.serve.fast_path import OnnxPredictor

    onnx, why = OnnxPredictor.try_build(bundle)
    if onnx is not None:
        return onnx, "onnx"
    return bundle.predict_input, why


@app.command()
def run(
    ctx: typer.Context,
    consumer: Annotated[
        str | None,
        typer.Option(help="This consumer's name in the group (default: stream.consumer)."),
    ] = None,
    log_dir: Annotated[
        Path | None, typer.Option(help="Prediction log folder (default .shipyard/predictions).")
    ] = None,
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not keep a prediction log.")] = False,
    native: Annotated[
        bool, typer.Option("--native", help="Score with the model itself, not the ONNX fast path.")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Serve Prometheus /metrics on 127.0.0.1:PORT (off by default)."
        ),
    ] = None,
) -> None:
    """Consume the stream: check, score and publish each event; SIGTERM drains and exits 0.

    Events are read in batches by the consumer group of the stream: section; start more
    consumers (distinct --consumer names) to share the work. Each event's prediction is
    written once per event id to the output stream and the prediction log; bad events go to
    the dead-letter stream with their reason.
    """
    from shipyard.registry.registry import ModelRegistry
    from shipyard.serve.server import RegistrySource
    from shipyard.stream.brokers import open_broker
    from shipyard.stream.config import load_window_defs
    from shipyard.stream.runner import StreamRunner
    from shipyard.stream.scoring import ModelFollower, native_predictor

    config = _config(ctx)
    project = project_dir(ctx)
    defs = load_window_defs(project, config)
    with open_workspace(ctx) as workspace:
        follower = ModelFollower(
            RegistrySource(ModelRegistry.for_workspace(workspace)),
            config.model_name,
            config.alias,
            build_predictor=native_predictor if native else fast_predictor,
            poll_interval_s=config.poll_interval_s,
        )
        backend = open_broker(config, consumer=consumer, log_rows=not no_log)
        logs = None if no_log else (log_dir or project / ".shipyard" / "predictions")
        windows = None
        if defs and config.url.startswith("nats://"):
            raise InvalidArgument(
                "window features keep their state in Redis: use a redis:// broker for a "
                "model that reads window features (NATS JetStream KV state is not built yet)"
            )
        if defs:
            from shipyard.stream.windows import Lateness, StreamWindows

            windows = StreamWindows(
                defs,
                backend.client,
                prefix=f"{config.input}:win",
                lateness=Lateness(config.watermark_delay_ms, config.allowed_lateness_ms),
                state_ttl_s=config.state_ttl_s(defs),
            )
        labels = None
        if config.labels is not None and logs is not None:
            labels = _labels_consumer(config, backend, logs)
        runner = StreamRunner(backend, follower, log_root=logs, windows=windows, labels=labels)
        if metrics_port is not None:
            from shipyard.stream.metrics import serve_metrics

            runner.metrics = serve_metrics(runner.consumer, metrics_port)

        def _stop(signum: int, frame: Any) -> None:
            runner.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        model = follower.current
        err_console.print(
            f"consuming {escape(config.input)} as {escape(backend.consumer)} in group "
            f"{escape(config.group)}: {escape(config.model)} v{model.version} ({model.scorer})"
        )
        try:
            stats = runner.run()
        finally:
            backend.close()
    err_console.print(
        f"stopped: {stats.events} events, {stats.outputs} predictions, "
        f"{stats.dead_letters} dead letters, {stats.late} late events, "
        f"{stats.duplicates} duplicates skipped"
    )


@app.command()
def status(
    ctx: typer.Context,
    window: Annotated[
        float,
        typer.Option(min=1, max=3600, callback=not_nan, help="Seconds of samples to average over."),
    ] = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Events/s, consumer lag, pending entries, dead letters and event-to-prediction latency."""
    from shipyard.stream.brokers import open_broker
    from shipyard.stream.status import read_status

    config = _config(ctx)
    backend = open_broker(config)
    try:
        client = getattr(backend, "client", None)  # samples are kept in Redis only
        found = read_status(client, config, backend.stats(), window_s=window)
    finally:
        backend.close()
    if as_json:
        write_json(found)
        return
    table = Table(title=f"{config.input} / group {config.group}", show_header=False)
    rows = [
        ("events/s", f"{found.events_per_s:.1f} (last {found.window_s:g} s)"),
        ("lag", "-" if found.lag is None else str(found.lag)),
        ("pending", str(found.pending)),
        ("consumers", str(found.consumers)),
        ("outputs", str(found.outputs)),
        ("dead letters", str(found.dead_letters)),
        ("late events", str(found.late_events)),
        ("latency p50", f"{number(found.latency_p50_ms)} ms"),
        ("latency p99", f"{number(found.latency_p99_ms)} ms"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


@app.command("dead-letters")
def dead_letters(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Latest N dead letters.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List dead letters: id, the input entry, when, why, and the payload (truncated)."""
    from shipyard.stream.dead_letters import list_dead_letters
    from shipyard.stream.redis_backend import connect

    config = _redis_only(ctx, "stream dead-letters")
    client = connect(config.url)
    try:
        letters = list_dead_letters(client, config, limit=limit)
    finally:
        client.close()
    if as_json:
        write_json(letters)
        return
    table = Table(title=f"dead letters of {config.input}")
    for column in ("id", "input entry", "when", "reason", "payload"):
        table.add_column(column)
    for letter in letters:
        payload = letter.payload if len(letter.payload) <= 60 else letter.payload[:57] + "..."
        table.add_row(
            letter.id,
            letter.entry_id,
            when(letter.ts_ms),
            escape(letter.reason),
            escape(payload),
        )
    console.print(table)


@app.command()
def replay(
    ctx: typer.Context,
    ids: Annotated[list[str], typer.Argument(help="Dead-letter ids (from `stream dead-letters`).")],
) -> None:
    """Send chosen dead letters' payloads back to the input stream.

    An event whose id was already scored produces no second output; one still bad comes back
    as a new dead letter.
    """
    from shipyard.stream.dead_letters import replay as replay_letters
    from shipyard.stream.redis_backend import connect

    config = _redis_only(ctx, "stream replay")
    client = connect(config.url)
    try:
        new = replay_letters(client, config, ids)
    finally:
        client.close()
    for old, fresh in zip(ids, new, strict=True):
        console.print(f"replayed {escape(old)} as {escape(config.input)} entry {fresh}")
