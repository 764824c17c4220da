"""The seed's design, reproduced for comparison only: not part of sse-logs, not for production.

This is the Sanic view from the blog post that sse-logs replaces (../shared/seed/, section
"[服务端2] 在 sanic 中使用 sse"), kept as it was: every client polls MongoDB with
`find({'type': T, 'id': I}).skip(num).limit(1)`, one query per line, and sleeps 0.2 s when there
is no new line. Only the wiring the post leaves out is added, so that the benchmark can run it:
the Sanic app, the route, the Motor client (the post's `request.app.ctx.client`), the address,
and timeouts long enough for a stream to outlive Sanic's 60 s defaults. Run by
scripts/bench.sh with SEED_MONGODB_URI, SEED_HOST and SEED_PORT set.
"""

import asyncio
import os

from motor.motor_asyncio import AsyncIOMotorClient
from sanic import Sanic
from sanic.views import HTTPMethodView


class SSELogsView(HTTPMethodView):
    """日志流，使用SSE"""

    async def get(self, request):
        print(request.args)
        _tp = request.args.get('type')
        _id = request.args.get('id')
        _num = int(request.args.get('num', 0))
        response = await request.respond(content_type='text/event-stream')
        while True:
            res = request.app.ctx.client['popop']['sse_logs'].find({
                'type': _tp,
                'id': _id,
            }).limit(1).skip(_num)
            async for r in res:
                _log = r['log']
                # 处理多行情况，每行必须是 data: xxx\n
                _log = _log.replace('\n', '\ndata: ')
                _num += 1
                break
            else:
                # _log = '[NONE]'
                await asyncio.sleep(0.2)
                continue
            if _log == '[DONE]':
                break
            await response.send(f'data: {_log}\n\n')
        await response.eof()


app = Sanic("seed_sse_logs")
# Sanic ends a response after 60 s by default; a log stream lives longer.
app.config.RESPONSE_TIMEOUT = 24 * 3600
app.config.REQUEST_TIMEOUT = 600
app.config.KEEP_ALIVE_TIMEOUT = 600
app.add_route(SSELogsView.as_view(), '/api/v1/sse/logs/')


@app.before_server_start
async def connect(app):
    app.ctx.client = AsyncIOMotorClient(os.environ.get('SEED_MONGODB_URI', 'mongodb://127.0.0.1:27017'))


if __name__ == '__main__':
    app.run(
        host=os.environ.get('SEED_HOST', '127.0.0.1'),
        port=int(os.environ.get('SEED_PORT', '8000')),
        single_process=True,
        access_log=False,
        motd=False,
        backlog=4096,
    )
