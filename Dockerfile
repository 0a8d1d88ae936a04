# The broker's command-line program, configured by a mounted config file.
#
#   docker build -t x-broker .
#   docker run --rm -p 1883:1883 -p 1882:1882 -p 8080:8080 \
#     -v "$PWD/config.yaml:/config/config.yaml:ro" x-broker
#
# The image runs `src/app/cli.ts --config /config/config.yaml`; see examples/config/broker.yaml for
# every key. (Not built in this repository's CI: the build needs Docker Hub and the Deno download
# host.)
FROM denoland/deno:2.9.6

WORKDIR /app
COPY deno.json deno.lock ./
COPY mod.ts ./
COPY src/ src/
COPY listeners/ listeners/
COPY hooks/ hooks/
# Fetch and cache the npm dependencies at build time, not at start.
RUN deno install --frozen --entrypoint src/app/cli.ts

USER deno
EXPOSE 1883 1882 8080
VOLUME ["/config"]
ENTRYPOINT ["deno", "run", "--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-sys", "--unstable-kv", "src/app/cli.ts"]
CMD ["--config", "/config/config.yaml"]
