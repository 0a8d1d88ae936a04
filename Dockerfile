# The broker's command-line program, configured by a mounted config file, its state in a volume.
#
#   docker build -t x-broker .
#   docker run --rm -p 1883:1883 -p 1882:1882 -p 8080:8080 \
#     -v "$PWD/examples/docker:/config:ro" -v broker-data:/data x-broker
#
# The image runs `src/app/cli.ts --config /config/config.yaml`. examples/docker/config.yaml is a
# starting point: its Deno KV store is /data/broker.kv (an absolute path in the /data volume; a
# relative path would resolve under the read-only /config mount) and its sysinfo listener on 8080
# answers the HEALTHCHECK below. Set HEALTHCHECK_URL when your health endpoint is elsewhere.
# tests/docker_test.ts checks this file's properties; it is not built in this repository's CI (the
# build needs Docker Hub and the npm registry).
FROM denoland/deno:2.9.6

# The app and data directories belong to the unprivileged user before anything is cached, so the
# dependencies it installs, node_modules and the KV store are all writable by it and nothing runs
# as root.
RUN mkdir -p /app /data /config && chown deno:deno /app /data
WORKDIR /app
USER deno

# Only the package's own import map and lockfile: no test-only package reaches the image.
COPY --chown=deno:deno deno.json deno.lock ./
COPY --chown=deno:deno mod.ts ./
COPY --chown=deno:deno src/ src/
COPY --chown=deno:deno listeners/ listeners/
COPY --chown=deno:deno hooks/ hooks/
# Fetch and cache the npm dependencies at build time, not at start.
RUN deno install --frozen --entrypoint src/app/cli.ts

VOLUME ["/data"]
EXPOSE 1883 1882 8080
ENV HEALTHCHECK_URL=http://127.0.0.1:8080/healthcheck
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["deno", "eval", "--no-config", "--no-lock", "const r = await fetch(Deno.env.get('HEALTHCHECK_URL')); Deno.exit(r.ok ? 0 : 1)"]
# --v8-flags=--max-semi-space-size=2: idle connections cost about a third less memory (src/app/v8_flags.ts).
ENTRYPOINT ["deno", "run", "--v8-flags=--max-semi-space-size=2", "--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-sys", "--unstable-kv", "src/app/cli.ts"]
CMD ["--config", "/config/config.yaml"]
