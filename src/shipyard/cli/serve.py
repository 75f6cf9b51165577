"""``shipyard serve``, ``predict``, ``export`` and ``deploy``: models out into the world."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from shipyard.cli.access import TOKEN_ENV, project_name
from shipyard.cli.context import console, open_workspace
from shipyard.cli.executors import ExecutorOption, RayAddressOption, choose_executor
from shipyard.cli.options import TlsCertOption, TlsKeyOption, not_nan
from shipyard.cli.project import project_dir
from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from shipyard.serve.traffic import DeploySpec

deploy_app = typer.Typer(help="Change traffic policies of running servers.", no_args_is_help=True)


def serve(
    ctx: typer.Context,
    refs: Annotated[
        list[str] | None,
        typer.Argument(
            help="model@alias (followed as it moves) or model:version (pinned) to serve "
            "(default: the deploy: section of shipyard.yaml)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    log_dir: Annotated[
        Path | None, typer.Option(help="Prediction log folder (default .shipyard/predictions).")
    ] = None,
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not keep a prediction log.")] = False,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            help="Answer only requests whose Host is this name (repeatable; *.example.com "
            "matches subdomains). Default: any host."
        ),
    ] = None,
    drain: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=300.0,
            callback=not_nan,
            help="Seconds readiness answers 503 after SIGTERM before the server stops "
            "accepting (give a load balancer time to take the replica out).",
        ),
    ] = 0.0,
) -> None:
    """Serve registered models over HTTP (V2 inference protocol + plain JSON + /metrics)."""
    from shipyard.serve.server import ServerConfig, deploy_from_refs, run_server, tls_options
    from shipyard.serve.traffic import DeploySpec

    tls = tls_options(tls_cert, tls_key)
    project = project_dir(ctx)
    if refs:
        deploy = deploy_from_refs(refs)
    else:
        from shipyard.pipeline.project import load_project

        section = load_project(project).spec.deploy
        if not section:
            raise InvalidArgument(
                "name models to serve (e.g. churn@production) or add a deploy: section"
            )
        deploy = DeploySpec.model_validate(section)
    _check_served(ctx, deploy)
    logs = None if no_log else str(log_dir or project / ".shipyard" / "predictions")
    from shipyard.cli.access import acting_identity
    from shipyard.security.identities import Kind

    me = acting_identity(ctx)
    config = ServerConfig(
        project_dir=str(project),
        deploy=deploy,
        prediction_log=logs,
        project=project_name(ctx),
        # svc-canary may borrow the role of a local operator only (security.services).
        local_operator=me.name if me.kind == Kind.LOCAL else None,
        allowed_hosts=allowed_host or None,
        drain_s=drain,
    )
    scheme = "https" if tls else "http"
    console.print(
        f"serving {', '.join(deploy.models)} on {scheme}://{host}:{port} with {workers} worker(s)"
    )
    run_server(config, host=host, port=port, workers=workers, **tls)


def _check_served(ctx: typer.Context, deploy: DeploySpec) -> None:
    """Resolve every alias to serve before a worker starts.

    A worker that cannot load its models dies inside uvicorn with a traceback; checked here,
    ``shipyard serve nosuch@production`` is one line naming what is missing (issue 14).

    Raises:
        NotFound: A model or alias does not exist in the registry.
    """
    from shipyard.registry.registry import ModelRegistry
    from shipyard.serve.traffic import PINNED

    with open_workspace(ctx) as workspace:
        registry = ModelRegistry.for_workspace(workspace)
        for spec in deploy.models.values():
            for alias in spec.aliases():
                pinned = alias.startswith(PINNED)
                registry.get(f"{spec.model}{alias}" if pinned else f"{spec.model}@{alias}")


def predict(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(help="model@alias, model:version, or model (its latest version).")
    ],
    source: Annotated[
        Path, typer.Argument(help="Input .csv or .parquet.", exists=True, dir_okay=False)
    ],
    output: Annotated[Path, typer.Argument(help="Output .parquet or .csv.")],
    chunk_rows: Annotated[
        int, typer.Option(min=1, help="Rows per chunk (memory stays flat).")
    ] = 50_000,
    unseen: Annotated[
        str | None,
        typer.Option(
            help="Unseen categories: error (reject the row) or unknown; default: the model's "
            "manifest (input_policy.unseen_categories)."
        ),
    ] = None,
    executor: ExecutorOption = None,
    ray_address: RayAddressOption = None,
) -> None:
    """Score a large file in chunks; rows that cannot be scored go to a reject file with reasons."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from shipyard.registry.registry import ModelRegistry
    from shipyard.serve.batch import score_file

    if unseen not in (None, "error", "unknown"):
        raise InvalidArgument("--unseen is error or unknown")
    choose_executor(executor, ray_address)
    with open_workspace(ctx) as workspace:
        registry = ModelRegistry.for_workspace(workspace)
        bundle = registry.load(ref)
        settings = workspace.settings.executor
        limits = workspace.settings.registry
        bundle_bytes = None
        if settings.kind != "local":  # workers read the verified bytes, not the store
            bundle_bytes = registry.blobs.get_bytes(bundle.sha256)
    with Progress(
        TextColumn("scoring"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("score", total=None)
        if bundle_bytes is None:
            report = score_file(
                bundle,
                source,
                output,
                chunk_rows=chunk_rows,
                unseen=unseen,
                on_chunk=lambda n: progress.advance(task, n),
            )
        else:
            from shipyard.core.executor import executor_for
            from shipyard.serve.batch_partitions import score_file_on

            report = score_file_on(
                executor_for(settings),
                bundle_bytes,
                bundle.sha256,
                source,
                output,
                limits=limits,
                chunk_rows=chunk_rows,
                unseen=unseen,
                on_chunk=lambda n: progress.advance(task, n),
            )
    console.print(
        f"{report.rows_in:,} rows: {report.rows_scored:,} scored into "
        f"{escape(str(report.output))}, "
        f"{report.rows_rejected:,} rejected"
        + (f" ({escape(str(report.rejects))})" if report.rejects else "")
    )


def export(
    ref: Annotated[
        str | None, typer.Argument(help="model@alias (not needed for --to kuberay).")
    ] = None,
    to: Annotated[
        str, typer.Option("--to", help="docker, kubernetes, haproxy, nginx or kuberay.")
    ] = "docker",
    out: Annotated[Path, typer.Option(help="Folder to write into.")] = Path("deploy"),
    image: Annotated[
        str, typer.Option(help="Container image for Kubernetes.")
    ] = "shipyard-model:latest",
    replicas: Annotated[
        int, typer.Option(min=1, help="Minimum replicas (load balancers: without --server).")
    ] = 2,
    server: Annotated[
        list[str] | None,
        typer.Option(
            help="A replica's host:port for haproxy/nginx (repeatable; default: --replicas "
            "replicas on 127.0.0.1, ports after --listen's)."
        ),
    ] = None,
    listen: Annotated[
        str, typer.Option(help="host:port the load balancer listens on.")
    ] = "127.0.0.1:8000",
) -> None:
    """Write a Dockerfile, Kubernetes manifests, an HAProxy/nginx config, or a RayCluster."""
    from shipyard.serve.server import deploy_from_refs

    if to == "kuberay":
        from shipyard.core.settings import load_settings
        from shipyard.serve.kuberay import raycluster

        out.mkdir(parents=True, exist_ok=True)
        path = out / "raycluster.yaml"
        from shipyard.serve.export import kubernetes_yaml as manifests

        path.write_text(manifests([raycluster(load_settings().executor)]))
        console.print(f"wrote {escape(str(path))}")
        return
    if ref is None:
        raise InvalidArgument(f"export --to {to} needs a model@alias")
    deploy_from_refs([ref])  # a name@alias of valid names: it is written into the files
    if to not in ("docker", "kubernetes", "haproxy", "nginx"):
        raise InvalidArgument("--to is docker, kubernetes, haproxy, nginx or kuberay")
    if to in ("haproxy", "nginx"):
        from shipyard.serve import balancers

        front = balancers.Upstream.parse(listen)
        upstreams = [balancers.Upstream.parse(s) for s in server or []] or [
            balancers.Upstream(front.host, front.port + i) for i in range(1, replicas + 1)
        ]
        write = balancers.haproxy if to == "haproxy" else balancers.nginx
        text = write(ref, upstreams, listen=front)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{to}.cfg" if to == "haproxy" else out / "nginx.conf"
        path.write_text(text)
        console.print(f"wrote {escape(str(path))} for {len(upstreams)} replica(s)")
        return
    from shipyard.serve.export import dockerfile, kubernetes, kubernetes_yaml

    out.mkdir(parents=True, exist_ok=True)
    if to == "docker":
        path = out / "Dockerfile"
        path.write_text(dockerfile(ref))
    else:
        path = out / "kubernetes.yaml"
        path.write_text(kubernetes_yaml(kubernetes(ref, image=image, replicas=replicas)))
    console.print(f"wrote {escape(str(path))}")


@deploy_app.command("policy")
def set_policy(
    url: Annotated[str, typer.Argument(help="Server base URL, e.g. http://127.0.0.1:8000.")],
    name: Annotated[str, typer.Argument(help="Served model name.")],
    policy: Annotated[
        str, typer.Argument(help='Policy JSON, e.g. \'{"type": "canary", "percent": 10}\' or null.')
    ],
) -> None:
    """Replace a served model's traffic policy (A/B, canary, shadow) on a running server."""
    import httpx

    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise InvalidArgument(f"set {TOKEN_ENV} to an API token of an ml-engineer or admin")
    try:
        body = json.loads(policy)
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"policy is not JSON: {e}") from e
    answer = httpx.put(
        f"{url.rstrip('/')}/admin/models/{name}/policy",
        json=body,
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )
    if answer.status_code != 200:
        raise InvalidArgument(f"the server refused ({answer.status_code}): {answer.text}")
    console.print_json(answer.text)
