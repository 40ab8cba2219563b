"""The completion routes of every wire format (chat completions, messages, responses): a reply planned
from the request's controls, answered whole or as a stream, with the faults it asks for."""

from __future__ import annotations

import itertools
import time
import zlib
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from trollllm.mockupstream.controls import Controls, MockRequestError, Reply, parse_controls, plan_reply
from trollllm.mockupstream.faults import Closing, Faults, abort, faulty_frames
from trollllm.mockupstream.pacing import Pacer, wire_frames
from trollllm.mockupstream.prompt_cache import PromptCache
from trollllm.mockupstream.recording import Recorder
from trollllm.mockupstream.wire_format import WireFormat, error_response


class Completions:
    """Answers completion requests in one wire format or another, for one run of the server."""

    def __init__(
        self,
        recorder: Recorder,
        faults: Faults,
        ids: itertools.count[int],
        prompt_cache: PromptCache | None,
        closing: Closing,
        pacer: Pacer,
    ) -> None:
        self._recorder = recorder
        self._faults = faults
        self._ids = ids
        self._prompt_cache = prompt_cache
        self._closing = closing
        self._pacer = pacer

    async def serve(self, request: web.Request, wire: WireFormat) -> web.StreamResponse:
        """One completion request: key and fault checks, the planned reply, whole or streamed."""
        body = await self._recorder.read_json(request)
        refusal = self._faults.key_refusal(wire, wire.api_key(request.headers))
        if refusal is None:
            refusal = self._faults.injected(wire)
        if refusal is not None:
            return refusal
        if not isinstance(body, dict):
            return error_response(wire, 400, "The request body is not a JSON object.")
        problem = wire.validate(body)
        if problem is not None:
            return error_response(wire, 400, problem)
        view = wire.view(body)
        try:
            controls = parse_controls(view, request.headers.items())
            reply = plan_reply(
                view,
                controls,
                max_tokens=wire.max_tokens(body),
                response_id=f"{wire.id_prefix}{next(self._ids):012d}",
                created=int(time.time()),
                hidden_input_tokens=wire.hidden_input_tokens(body),
            )
        except MockRequestError as exc:
            return error_response(wire, 400, str(exc))
        if self._prompt_cache is not None:
            reply = self._prompt_cache.apply(wire.api_key(request.headers), view, reply)
        stream = body.get("stream") is True
        delay_ms = controls.delay_ms + (0 if stream else controls.first_byte_delay_ms)
        if delay_ms and not await self._closing.pause(delay_ms):
            return abort(request)
        if controls.hang:
            await self._closing.wait()
            return abort(request)
        if controls.status is not None:
            message = f"mock: status {controls.status} requested"
            return error_response(wire, controls.status, message, controls.retry_after)
        if stream:
            return await self._stream(request, wire, reply, body, controls)
        if controls.drop_after is not None:
            return abort(request)
        render = wire.malformed_completion if controls.bad_json else wire.completion
        payload = render(reply, body)
        return web.Response(
            body=payload, content_type="application/json", headers={wire.request_id_header: reply.response_id}
        )

    async def _stream(
        self,
        request: web.Request,
        wire: WireFormat,
        reply: Reply,
        body: Mapping[str, Any],
        controls: Controls,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                wire.request_id_header: reply.response_id,
            }
        )
        frames = faulty_frames(wire.events(reply, body, malformed=controls.bad_json), controls)
        compressor = zlib.compressobj(wbits=zlib.MAX_WBITS | 16) if controls.gzip else None
        if compressor is not None:
            response.headers["Content-Encoding"] = "gzip"
            frames = [compressor.compress(frame) + compressor.flush(zlib.Z_SYNC_FLUSH) for frame in frames]
            frames.append(compressor.flush())
        pause = self._closing.pause
        drop_after = controls.drop_after
        try:
            await response.prepare(request)
            if controls.first_byte_delay_ms and not await pause(controls.first_byte_delay_ms):
                return abort(request, response)
            if drop_after == 0:
                return abort(request, response)
            await response.write(frames[0])  # with the head
            if controls.chunk_delay_ms and request.transport is not None:
                # The rest from the shared timer (`Pacer`), one frame every `chunk_delay_ms`.
                drop_at = None if drop_after is None else drop_after - 1
                paced = wire_frames(response, frames[1:])
                if not await self._pacer.send(request.transport, paced, controls.chunk_delay_ms, drop_at):
                    return response  # aborted: dropped on purpose, the client gone, or the server stopping
            else:
                for index, frame in enumerate(frames[1:], 1):
                    if drop_after is not None and index >= drop_after:
                        return abort(request, response)
                    await response.write(frame)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away; nothing left to answer
        return response
