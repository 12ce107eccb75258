# augur: one image for every process of the demo (augur serve, augur agent,
# augur demo-backend, augur loadgen); the subcommand is the container's command.
#
#   docker build -t augur .
#   docker run --rm -p 18000:18000 -p 18080:18080 augur        # augur serve
#   docker run --rm augur agent --help
#
# test/compose/dockerfile-build.test.ts runs this file's npm commands without
# Docker and checks that they produce the same dist/src as `npm ci && npm run build`.

# Pinned to a patch release so a rebuild gets the same Node; keep it on 20.x
# (package.json engines) and bump deliberately.
ARG NODE_IMAGE=node:20.20.0-bookworm-slim

# ---- build: every dependency, then tsc into dist/ ---------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# The lockfile first, so the dependency layer is reused while only sources change.
COPY package.json package-lock.json ./
# --ignore-scripts: nothing in the build needs an install script (tsc only); it
# keeps the optional native TensorFlow binding from downloading its library.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY proto ./proto
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies, the compiled code and the protos ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
# glibc's mmap threshold fixed at its default (128 KiB) instead of rising to the largest block
# freed so far. With the LSTM on it saved 45-80 MB while augur still freed large buffers as it
# ran; now 9-22 MB at 5,000 endpoints, and it guards against large blocks freed by code augur
# does not control (BENCHMARKS.md, `bench:ingest -- --only=footprint --lstm-only --image-malloc`).
ENV MALLOC_MMAP_THRESHOLD_=131072
WORKDIR /app
COPY package.json package-lock.json ./
# No dev tools and no optional native TensorFlow binding: the LSTM runs on the
# tfjs WebAssembly backend, as it does on the development machines.
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force
# proto/ is read at run time (gRPC reflection), found relative to dist/src/common.
COPY proto ./proto
COPY --from=build /app/dist/src ./dist/src
# The dashboard page is plain files beside its compiled server (tsc does not copy them).
COPY --from=build /app/src/dashboard/static ./dist/src/dashboard/static
COPY docker/healthcheck.mjs ./docker/healthcheck.mjs
# Learned state of augur serve (--data-dir); a volume in docker-compose.yml.
RUN mkdir -p /var/lib/augur && chown node:node /var/lib/augur
USER node
# gRPC (Telemetry, LoadPrediction, ADS, ext_proc, health) and HTTP (/metrics, /healthz, /dashboard).
EXPOSE 18000 18080
# Probes augur serve's /healthz; other subcommands set their own check in docker-compose.yml.
HEALTHCHECK --interval=5s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "docker/healthcheck.mjs", "http://127.0.0.1:18080/healthz"]
# V8's young generation capped at 4 MB a semi-space (its default grows to 16): under augur serve's
# allocation it grew to 32 MB and stayed resident, 5 KB an endpoint at 5,000 endpoints. Capped,
# 4.2-4.5 KB per endpoint less at 5,000 endpoints and 1.3 at 20,000, scoring CPU unchanged
# (BENCHMARKS.md, `npm run bench:ingest -- --only=footprint`).
ENTRYPOINT ["node", "--max-semi-space-size=4", "dist/src/cli/main.js"]
CMD ["serve", "--grpc-listen", "0.0.0.0:18000", "--http-listen", "0.0.0.0:18080", "--data-dir", "/var/lib/augur"]
