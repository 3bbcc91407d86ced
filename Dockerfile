# The qasearch image of docker-compose.yml: CLI, shard workers (supervisor), gateway.
FROM python:3.11-slim

# torch first and pinned, from the CPU wheel index: an unpinned torch pulled in by
# another package would fetch a multi-GB CUDA build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-tools \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 qasearch

WORKDIR /app
COPY requirements.txt ./
RUN pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0 \
    && pip install -r requirements.txt
COPY . .
RUN pip install --no-deps -e . \
    && mkdir -p /var/lib/qasearch/run && chown -R qasearch /var/lib/qasearch

USER qasearch
ENV QASEARCH_RUN_DIR=/var/lib/qasearch/run
CMD ["qasearch", "--help"]
