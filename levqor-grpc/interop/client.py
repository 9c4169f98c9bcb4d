#!/usr/bin/env python3
"""A Python client of Levqor's gRPC API, its stubs generated at run time from the same protos
with grpcio-tools: it creates a user and a key, submits a job, watches it to its end and reads
it back. It prints one JSON line of what it saw and exits 1 when anything is not as expected.

    pip install -r levqor-grpc/interop/requirements.txt
    python3 levqor-grpc/interop/client.py --target 127.0.0.1:50051 --admin-key "$LEVQOR_ADMIN_KEY"
"""

import argparse
import importlib.resources
import json
import pathlib
import sys
import tempfile
import uuid

import grpc
from grpc_tools import protoc

PROTOS = pathlib.Path(__file__).resolve().parent.parent / "proto"


def generate(out):
    """Compiles the Levqor protos into Python modules under `out` and makes them importable."""
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    files = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "levqor" / "v1").glob("*.proto"))
    code = protoc.main(
        ["grpc_tools.protoc", f"-I{PROTOS}", f"-I{include}",
         f"--python_out={out}", f"--grpc_python_out={out}", *files]
    )
    if code != 0:
        sys.exit(f"protoc failed ({code})")
    sys.path.insert(0, out)


def run(target, admin_key):
    from google.protobuf import json_format
    from levqor.v1 import jobs_pb2, jobs_pb2_grpc, users_pb2, users_pb2_grpc

    channel = grpc.insecure_channel(target)
    admin = [("authorization", f"Bearer {admin_key}")]
    users = users_pb2_grpc.UsersServiceStub(channel)
    email = f"py-{uuid.uuid4().hex[:8]}@example.com"
    user = users.CreateUser(users_pb2.CreateUserRequest(email=email, name="Py"), metadata=admin).user
    key = users.CreateKey(users_pb2.CreateKeyRequest(user_id=user.id), metadata=admin).secret
    me = [("authorization", f"Bearer {key}"), ("x-request-id", "py-interop-1")]

    jobs = jobs_pb2_grpc.JobsServiceStub(channel)
    request = jobs_pb2.SubmitRequest(idempotency_key="py-1")
    request.workflow.update(
        {"name": "interop", "steps": [{"id": "a", "type": "log", "message": "hi {{input.who}}"}]}
    )
    request.input.struct_value.update({"who": "python"})
    submitted, call = jobs.Submit.with_call(request, metadata=me, timeout=10)
    answer_metadata = dict(call.initial_metadata())
    job = submitted.job

    statuses = []
    for event in jobs.Watch(jobs_pb2.WatchRequest(id=job.id), metadata=me, timeout=30):
        statuses.append(event.job.status)
    got = jobs.GetJob(jobs_pb2.GetJobRequest(id=job.id), metadata=me, timeout=10)

    try:
        jobs.GetJob(jobs_pb2.GetJobRequest(id=str(uuid.uuid4())), metadata=me, timeout=10)
        stranger = "OK"
    except grpc.RpcError as e:
        stranger = e.code().name
    try:
        jobs.ListJobs(jobs_pb2.ListJobsRequest(), timeout=10)
        keyless = "OK"
    except grpc.RpcError as e:
        keyless = e.code().name

    return {
        "job_id": job.id,
        "submitted": job.status,
        "statuses": statuses,
        "status": got.status,
        "result": json_format.MessageToDict(got.result),
        "request_id": answer_metadata.get("x-request-id"),
        "ratelimit_limit": answer_metadata.get("x-ratelimit-limit"),
        "stranger": stranger,
        "keyless": keyless,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="host:port of levqor's gRPC listener")
    parser.add_argument("--admin-key", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        generate(out)
        seen = run(args.target, args.admin_key)
    print(json.dumps(seen))
    expected = (
        seen["submitted"] == "queued"
        and seen["statuses"][-1:] == ["succeeded"]
        and seen["status"] == "succeeded"
        and seen["result"] == {"a": {"message": "hi python"}}
        and seen["request_id"] == "py-interop-1"
        and seen["stranger"] == "NOT_FOUND"
        and seen["keyless"] == "UNAUTHENTICATED"
    )
    sys.exit(0 if expected else 1)


if __name__ == "__main__":
    main()
