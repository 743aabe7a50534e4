"""Signing through Nexus: a workflow in another namespace gets a verified outcome."""

from __future__ import annotations

import uuid

import pytest
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest, DeleteNexusEndpointRequest
from temporalio.client import Client
from temporalio.worker import Worker

from signgate import ids
from signgate.contracts import SignatureWorkflowInput
from signgate.dfns.requests import HashRequest
from tests.support.engine_worker import RunningWorker
from tests.support.eventually import eventually
from tests.support.sandbox import EngineSandbox
from tests.support.temporal import CALLER_NAMESPACE, DevServer
from workflows.nexus_caller import NexusCallerInput, SignViaNexusWorkflow
from workflows.signature import SignatureWorkflow

pytestmark = pytest.mark.e2e

HASH = "0x" + "3c" * 32


async def test_a_workflow_in_another_namespace_signs_through_nexus(
    dev_server: DevServer, worker: RunningWorker, sandbox: EngineSandbox
) -> None:
    endpoint = f"signgate-{uuid.uuid4().hex[:8]}"
    created = await worker.client.operator_service.create_nexus_endpoint(
        CreateNexusEndpointRequest(
            spec=EndpointSpec(
                name=endpoint,
                target=EndpointTarget(
                    worker=EndpointTarget.Worker(
                        namespace=dev_server.namespace, task_queue=worker.task_queue
                    )
                ),
            )
        )
    )
    caller = await Client.connect(
        dev_server.address, namespace=CALLER_NAMESPACE, data_converter=worker.client.data_converter
    )
    caller_queue = f"caller-{uuid.uuid4().hex[:8]}"
    request_id = f"nexus-{uuid.uuid4().hex[:8]}"
    try:
        async with Worker(caller, task_queue=caller_queue, workflows=[SignViaNexusWorkflow]):
            handle = await caller.start_workflow(
                SignViaNexusWorkflow.run,
                NexusCallerInput(
                    request_id=request_id,
                    endpoint=endpoint,
                    signature=SignatureWorkflowInput(
                        target=sandbox.target("key", "evm-gated"), request=HashRequest(hash=HASH)
                    ),
                ),
                id=f"caller-{request_id}",
                task_queue=caller_queue,
            )
            # The request waits for approval in signgate's namespace, under its request id.
            signature = worker.client.get_workflow_handle_for(SignatureWorkflow.run, request_id)

            async def approval_id() -> str | None:
                return (await signature.query(SignatureWorkflow.state)).approval_id

            approval = await eventually(approval_id, what="the approval of the Nexus request")
            await sandbox.decide(approval, "alice", "bob")
            outcome = await handle.result()
    finally:
        await worker.client.operator_service.delete_nexus_endpoint(
            DeleteNexusEndpointRequest(id=created.endpoint.id, version=created.endpoint.version)
        )
    assert outcome.kind == "signed"
    assert outcome.verification is not None and outcome.verification.status == "verified"
    assert outcome.workflow_id == request_id
    external_id = ids.external_id_for(request_id)
    assert len(await sandbox.signatures_with_external_id("evm-gated", external_id)) == 1
