"""``shipyard export --to kuberay``: a RayCluster for the ``ray`` executor, from the settings.

KubeRay's operator (``ray.io/v1``) runs the cluster; this writes its ``RayCluster`` resource:
a head and ``executor.workers`` worker replicas of ``executor.image`` (Shipyard with the
``ray`` extra), ``executor.worker_cpus`` CPUs and ``executor.worker_memory`` each, with Ray's
``num-cpus`` equal to the pod's CPU limit so Ray never schedules more trials than the pod has
cores. The dashboard is off (it is an unauthenticated control surface; RELIABILITY.md,
lesson 3) and the head's Service exposes only the GCS port the drivers connect to
(``executor.address: <name>-head-svc:6379``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.core.settings import ExecutorSettings

RAY_PORT = 6379


def _container(name: str, settings: ExecutorSettings) -> dict[str, Any]:
    resources = {"cpu": str(settings.worker_cpus), "memory": settings.worker_memory}
    return {
        "name": name,
        "image": settings.image,
        "resources": {"limits": resources, "requests": resources},
        "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "ray stop"]}}},
    }


def raycluster(settings: ExecutorSettings, *, name: str = "shipyard") -> dict[str, Any]:
    """The ``RayCluster`` resource matching ``settings`` (the ``executor:`` section)."""
    start = {"num-cpus": str(settings.worker_cpus), "disable-usage-stats": "true"}
    head = _container("ray-head", settings)
    head["ports"] = [{"containerPort": RAY_PORT, "name": "gcs"}]
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "shipyard"}},
        "spec": {
            "headGroupSpec": {
                "serviceType": "ClusterIP",
                "rayStartParams": {**start, "include-dashboard": "false"},
                "template": {"spec": {"containers": [head]}},
            },
            "workerGroupSpecs": [
                {
                    "groupName": "workers",
                    "replicas": settings.workers,
                    "minReplicas": settings.workers,
                    "maxReplicas": settings.workers,
                    "rayStartParams": start,
                    "template": {"spec": {"containers": [_container("ray-worker", settings)]}},
                }
            ],
        },
    }
