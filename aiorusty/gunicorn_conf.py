"""A gunicorn configuration that puts uvicorn's stock worker class on aiorusty's loop.

    AIORUSTY_IFACE="tap:rusty0,ip=10.0.0.2/24,host=10.0.0.1/24,queues=2,queue=auto" \\
    gunicorn -k uvicorn.workers.UvicornWorker -w 2 -c python:aiorusty.gunicorn_conf app:app

uvicorn's worker class for gunicorn chooses its loop itself ("auto": uvloop when
installed) and takes no option to change it. Its uvicorn Config is made in the
arbiter before the fork, so the post_fork hook below, which runs in the new
worker before the worker starts its loop, sets that Config's loop to
aiorusty.new_event_loop. Each worker's loop then opens the interfaces of
AIORUSTY_IFACE; with queues=N,queue=auto each worker claims its own queue, and
the listening socket gunicorn hands every worker (bound to 0.0.0.0 or to a
stack address) also listens on that worker's stack.

With a configuration file of your own, import the hook into it:
    from aiorusty.gunicorn_conf import post_fork

Owns: that hook. Not: the loop (aiorusty.loop), the queue claim (aiorusty.nic._claim).
"""

LOOP = "aiorusty:new_event_loop"


def post_fork(server, worker):
    """gunicorn's post_fork hook: run this worker's uvicorn server on aiorusty's loop."""
    config = getattr(worker, "config", None)
    if config is None or not hasattr(config, "loop"):
        server.log.warning("aiorusty.gunicorn_conf: worker class %s is not uvicorn's (no uvicorn Config); its loop "
                           "is left as it is (use -k uvicorn.workers.UvicornWorker)", type(worker).__name__)
        return
    config.loop = LOOP
