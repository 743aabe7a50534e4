"""``signgate dev`` serves signing over Nexus: a workflow in its second namespace signs."""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio.api.operatorservice.v1 import ListNexusEndpointsRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from signgate.commands.dev import CALLER_NAMESPACE, NEXUS_ENDPOINT
from signgate.contracts import SignatureWorkflowInput, SigningTarget
from signgate.dfns.requests import HashRequest
from tests.cli.support import HASH, DevProcess
from tests.support.credentials import Credentials
from workflows.nexus_caller import NexusCallerInput, SignViaNexusWorkflow


async def test_the_dev_stack_has_the_endpoint_and_a_caller_namespace_signs_through_it(
    stack: DevProcess, temporal: Client
) -> None:
    info = stack.info()
    found = await temporal.operator_service.list_nexus_endpoints(
        ListNexusEndpointsRequest(name=NEXUS_ENDPOINT)
    )
    [endpoint] = found.endpoints
    assert endpoint.spec.target.worker.namespace == info.namespace
    assert endpoint.spec.target.worker.task_queue == info.task_queue

    key_id = Credentials.load(Path(info.credentials_path)).key_id("evm-ops")
    caller = await Client.connect(
        info.temporal_address, namespace=CALLER_NAMESPACE, data_converter=pydantic_data_converter
    )
    queue = f"caller-{uuid.uuid4().hex[:8]}"
    request_id = f"nexus-dev-{uuid.uuid4().hex[:8]}"
    async with Worker(caller, task_queue=queue, workflows=[SignViaNexusWorkflow]):
        outcome = await caller.execute_workflow(
            SignViaNexusWorkflow.run,
            NexusCallerInput(
                request_id=request_id,
                signature=SignatureWorkflowInput(
                    target=SigningTarget(kind="key", id=key_id), request=HashRequest(hash=HASH)
                ),
            ),
            id=f"caller-{request_id}",
            task_queue=queue,
        )
    assert outcome.kind == "signed"
    assert outcome.verification is not None and outcome.verification.status == "verified"
    assert (await temporal.get_workflow_handle(request_id).describe()).id == request_id
