"""Turn Prefect's default Kubernetes base job template into one whose pods request GPUs.

    prefect work-pool get-default-base-job-template --type kubernetes --file k8s.json
    python deployments/gpu_job_template.py k8s.json gpu-template.json
    prefect work-pool create gpu --type kubernetes --base-job-template gpu-template.json

Every flow-run pod of the pool then asks for `gpu_count` (a job variable, default 1) of
`nvidia.com/gpu` (the NVIDIA device plugin's resource name), is scheduled only on nodes
labelled `nvidia.com/gpu.present=true` (set by NVIDIA's GPU feature discovery), and tolerates
the usual `nvidia.com/gpu` taint of GPU node pools.

It also moves `parallelism` and `completions` from the pod spec, where Prefect's default
template has them and Kubernetes has no such fields (a strict API server rejects the Job, a
lenient one drops them with a warning), to the Job spec they belong to.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

GPU_RESOURCE = "nvidia.com/gpu"
# Fields of a Job's spec that templates have been seen to put in its pod spec.
JOB_SPEC_FIELDS = ("parallelism", "completions")


def add_gpu_request(template: dict[str, Any], default_gpus: int = 1) -> dict[str, Any]:
    """A copy of a Kubernetes base job template whose job container requests GPUs.

    Raises:
        ValueError: the template has no job container to put the request on.
    """
    result = copy.deepcopy(template)
    try:
        job = result["job_configuration"]["job_manifest"]["spec"]
        pod = job["template"]["spec"]
        container = pod["containers"][0]
    except (KeyError, IndexError, TypeError):
        raise ValueError("not a Kubernetes base job template: it has no "
                         "job_configuration.job_manifest.spec.template.spec.containers[0]") from None
    for name in JOB_SPEC_FIELDS:
        if name in pod:
            job.setdefault(name, pod.pop(name))
    # Kubernetes takes GPUs as limits only (requests default to the limit); they cannot be
    # overcommitted, so a pod never shares its GPU with another training.
    container.setdefault("resources", {}).setdefault("limits", {})[GPU_RESOURCE] = "{{ gpu_count }}"
    pod.setdefault("nodeSelector", {})["nvidia.com/gpu.present"] = "true"
    tolerations = pod.setdefault("tolerations", [])
    if not any(t.get("key") == GPU_RESOURCE for t in tolerations):
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    result["variables"]["properties"]["gpu_count"] = {
        "title": "GPU count", "type": "integer", "default": default_gpus, "minimum": 1,
        "description": f"{GPU_RESOURCE} devices for each flow-run pod",
    }
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python deployments/gpu_job_template.py DEFAULT_TEMPLATE.json OUT.json", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        template = json.load(f)
    with open(argv[1], "w") as f:
        json.dump(add_gpu_request(template), f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
