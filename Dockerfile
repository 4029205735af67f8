# rpcviz in a container: `rpcviz serve` by default (a pod of deploy/kubernetes/), any other
# command by naming it: `docker run --rm rpcviz:0.1.0 call greeter:50051 -n 100`.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

# Only what `pip install .` reads: the project metadata (pyproject names README.md as its readme)
# and the two packages. Tests, benchmarks and screenshots stay out of the image.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY transport ./transport
COPY app ./app
RUN pip install . && rm -rf /src

# A numeric non-root user, so a pod's `runAsNonRoot: true` can verify it without looking it up.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin rpcviz
USER 10001:10001
WORKDIR /

EXPOSE 50051
# Exec form: rpcviz is PID 1 and receives SIGTERM itself (a shell in between would not pass it
# on, and the pod would be killed at the end of its grace period instead of draining).
ENTRYPOINT ["rpcviz"]
# Listen on every interface: the default 127.0.0.1 is unreachable from the kubelet's probe and
# from other pods.
CMD ["serve", "--host", "0.0.0.0", "--port", "50051"]
